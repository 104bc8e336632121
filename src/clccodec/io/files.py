"""Reading files with one-line errors, and atomic output.

read_bytes: every input file (images, .clc files, dictionaries) is read through it, so a missing, unreadable or
directory path gives the same one-line message everywhere, as the caller's error type.

write_atomic: a temporary file in the destination folder, renamed into place when complete. A reader (or an
interrupted run) never sees a partial file at the destination. The temporary file is created with mode 0600;
the finished file gets the mode a plain open() would give (0666 minus the umask), as users of cwebp or cjxl expect
of their outputs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import ClcError, UsageError

# Read once at import (os.umask can only be read by setting it; doing that per write would race with threads).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def read_bytes(path: str | Path, error: type[ClcError] = UsageError, what: str = "") -> bytes:
    """The file's bytes; a missing, directory or unreadable path raises `error` ("{what}{path}: no such file")."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory"
    except PermissionError:
        problem = "permission denied"
    except OSError as e:
        problem = f"cannot read ({e.strerror or e})"
    raise error(f"{what}{path}: {problem}")


def write_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write `data` to `path` atomically; refuse to replace an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    # The name is bound before the file exists, so an interrupt (Ctrl-C) at any point, even inside the call that
    # creates it, still finds and removes it; mkstemp returns the name only after creating the file.
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            continue
        except BaseException:
            _remove(tmp)
            raise
    else:
        raise UsageError(f"{path}: cannot create a temporary file beside it")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
