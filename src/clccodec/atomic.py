"""Atomic file output: a temporary file in the destination folder, renamed into place when complete.

A reader (or an interrupted run) never sees a partial file at the destination. mkstemp creates its file with
mode 0600; the finished file gets the mode a plain open() would give (0666 minus the umask), as users of
cwebp or cjxl expect of their outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError

# Read once at import (os.umask can only be read by setting it; doing that per write would race with threads).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write `data` to `path` atomically; refuse to replace an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
