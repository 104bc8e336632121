"""Reading files with one-line errors, and atomic output.

read_bytes: every input file (images, .clc files, dictionaries) is read through it, so a missing, unreadable or
directory path gives the same one-line message everywhere, as the caller's error type.

write_atomic: a temporary file in the destination folder, renamed into place when complete. A reader (or an
interrupted run) never sees a partial file at the destination. The temporary file is created with mode 0600;
the finished file gets the mode a plain open() would give (0666 minus the umask), as users of cwebp or cjxl expect
of their outputs.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Union

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


# what every function that reads a file takes, as Pillow's open() does: a path, the bytes, or a binary file object
FileSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


def read_source(src: FileSource, error: type[ClcError] = UsageError, what: str = "") -> bytes:
    """The bytes of a path (str or os.PathLike), of a bytes-like object, or of a binary file object (read from its
    current position), as Pillow's open() takes them; anything else is a UsageError naming the type."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        return read_bytes(os.fspath(src), error, what)
    read = getattr(src, "read", None)
    if isinstance(src, io.TextIOBase):
        raise UsageError(f"{what}a file object opened in text mode: open it with 'rb'")
    if callable(read):
        try:
            data = read()
        except (OSError, ValueError) as e:  # closed, write-only, ...
            raise error(f"{what}cannot read the file object ({e})") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError(f"{what}a file object opened in text mode: open it with 'rb'")
        return bytes(data)
    raise UsageError(f"{what}expected a path, bytes or a binary file object, got {type(src).__name__}")


def read_info(src: FileSource) -> dict:
    """Header fields of a .clc file (a path, its bytes or a binary file object), its size and bits per pixel
    (format.container.read_info). Reads headers only: no model, no torch."""
    from ..format.container import read_info as header_info

    return header_info(read_source(src))


def check_output(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse, before any work, an output that write_atomic would refuse or fail on after it: an existing file
    (without `force`), a folder, a missing or read-only folder to write into."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder (give a file name)")
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    check_folder(path.parent, path)


def check_folder(folder: str | os.PathLike, file: str | os.PathLike | None = None) -> None:
    """Refuse an output folder that is missing or read-only (`file`: the output named in the message)."""
    folder = Path(folder)
    where = f"{file}: " if file is not None else ""
    if not folder.is_dir():
        raise UsageError(f"{where}output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}cannot write into folder {folder} (permission denied)")


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
