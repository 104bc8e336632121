"""Files anywhere pyarrow (or fsspec) can reach: local folders, s3://, gs://, hdfs://, ...

A location is a string: a local path, or a URI that `pyarrow.fs.FileSystem.from_uri` understands, or one of an
fsspec filesystem (wrapped for pyarrow) where pyarrow does not know the scheme. Every function takes and returns
location strings, so that rows of a Ray dataset stay plain strings and each worker resolves them itself.

Writes are atomic: on a local filesystem io/files.write_atomic (a hidden temporary file beside the target,
renamed into place when complete); on S3 and GCS one upload, which the store makes visible only when it is
complete; elsewhere (HDFS, fsspec filesystems) a temporary name, then a rename. A reader, a rerun or a crashed
worker never sees a half-written file at its final name.
"""

from __future__ import annotations

import os
import posixpath
import secrets
from functools import lru_cache

from ..errors import UsageError


OBJECT_STORES = ("s3", "gcs")  # pyarrow filesystems whose uploads become visible only when complete


def is_uri(location: str) -> bool:
    return "://" in location


@lru_cache(maxsize=64)
def _filesystem(root: str):
    """The pyarrow filesystem of a URI's scheme and host (cached per worker process)."""
    import pyarrow as pa
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(root)[0]
    except pa.ArrowInvalid as first:  # a scheme pyarrow does not know: fsspec's, if installed
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem
        except ImportError:
            raise UsageError(f"{root}: unsupported location ({first})") from None
        try:
            return PyFileSystem(FSSpecHandler(fsspec.filesystem(root.split("://", 1)[0])))
        except (ValueError, ImportError) as e:
            raise UsageError(f"{root}: unsupported location ({e})") from None


def resolve(location: str):
    """(pyarrow filesystem, path inside it) of a location."""
    from pyarrow import fs

    if not is_uri(location):
        return fs.LocalFileSystem(), os.path.abspath(location)
    scheme, rest = location.split("://", 1)
    if scheme == "file":
        return fs.LocalFileSystem(), "/" + rest.lstrip("/")
    host = rest.split("/", 1)[0]
    filesystem = _filesystem(f"{scheme}://{host}")
    if isinstance(filesystem, fs.LocalFileSystem):
        return fs.LocalFileSystem(), rest
    return filesystem, rest  # bucket/key for object stores (pyarrow's convention)


def join(location: str, *parts: str) -> str:
    return posixpath.join(location, *parts) if is_uri(location) else os.path.join(location, *parts)


def kind(location: str) -> str:
    """'file', 'dir' or 'missing'."""
    from pyarrow import fs

    filesystem, path = resolve(location)
    info = filesystem.get_file_info(path)
    return {fs.FileType.File: "file", fs.FileType.Directory: "dir"}.get(info.type, "missing")


def list_files(location: str, suffixes: frozenset[str]) -> list[str]:
    """Every file below a folder or prefix whose name ends with one of `suffixes` (case-insensitive), as paths
    relative to it, sorted; hidden files and folders are skipped."""
    from pyarrow import fs

    filesystem, root = resolve(location)
    found = []
    for info in filesystem.get_file_info(fs.FileSelector(root, recursive=True)):
        if info.type != fs.FileType.File:
            continue
        rel = posixpath.relpath(info.path.replace(os.sep, "/"), root.replace(os.sep, "/"))
        if any(p.startswith(".") for p in rel.split("/")):
            continue
        if posixpath.splitext(rel)[1].lower() in suffixes:
            found.append(rel)
    return sorted(found)


def read(location: str) -> bytes:
    """The bytes of a file; a missing or unreadable one raises UsageError with a one-line reason."""
    try:
        filesystem, path = resolve(location)
        with filesystem.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"{location}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{location}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{location}: permission denied") from None
    except OSError as e:
        raise UsageError(f"{location}: cannot read ({e})") from None


def make_dirs(location: str) -> None:
    filesystem, path = resolve(location)
    try:
        filesystem.create_dir(path, recursive=True)
    except OSError as e:
        raise UsageError(f"{location}: cannot create the folder ({e})") from None


def write_atomic(location: str, data: bytes) -> None:
    """Write a whole file so that its final name only ever holds complete data (see the module's docstring)."""
    from pyarrow import fs

    filesystem, path = resolve(location)
    parent = posixpath.dirname(path) if is_uri(location) else os.path.dirname(path)
    if parent:
        filesystem.create_dir(parent, recursive=True)
    if filesystem.type_name in OBJECT_STORES:
        with filesystem.open_output_stream(path) as f:  # one object upload: visible only once complete
            f.write(data)
        return
    if not isinstance(filesystem, fs.LocalFileSystem):  # HDFS, fsspec's: a temporary name, then a rename
        tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{secrets.token_hex(4)}.part")
        try:
            with filesystem.open_output_stream(tmp) as f:
                f.write(data)
            filesystem.move(tmp, path)
        except BaseException:
            try:
                filesystem.delete_file(tmp)
            except OSError:
                pass
            raise
        return
    from ..io.files import write_atomic as write_local

    write_local(path, data, force=True)  # (a rerun replaces an incomplete output)
