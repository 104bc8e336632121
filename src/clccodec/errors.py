"""Typed errors. The CLI turns every ClcError into one line on stderr and a non-zero exit code."""

from __future__ import annotations


class ClcError(Exception):
    """Base class of every error clccodec raises on purpose."""

    exit_code = 1


class FormatError(ClcError):
    """The bytes are not a valid .clc file (foreign, corrupt or truncated)."""

    exit_code = 3


class NotAClcFileError(FormatError):
    """Wrong magic: some other kind of file."""


class TruncatedError(FormatError):
    """The file ends before its declared contents."""


class ChecksumError(FormatError):
    """The contents do not match the stored checksum (bit rot, transfer damage, tampering)."""


class UnsupportedVersionError(FormatError):
    """A container version this build cannot read."""


class ReferenceIndexError(FormatError):
    """A file's reference index is outside the (otherwise matching) dictionary: the file is corrupt."""


class PixelLimitError(FormatError):
    """The file's image is larger than the decoder's pixel limit (--max-pixels): refused before any work."""


class ModelError(ClcError):
    """Model weights missing, unreadable, or not the model a file needs."""

    exit_code = 4


class ModelMismatchError(ModelError):
    """The file was written by a different model than the one loaded."""


class DictionaryError(ClcError):
    """Reference dictionary missing, unreadable, or not the one a file needs."""

    exit_code = 4


class DictionaryMismatchError(DictionaryError):
    """The file references a different dictionary than the one loaded."""


class ImageError(ClcError):
    """An input image that cannot be read or is not supported."""

    exit_code = 2


class UsageError(ClcError):
    """Invalid options or arguments (bad quality, output exists, ...)."""

    exit_code = 2
