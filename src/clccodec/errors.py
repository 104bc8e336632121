"""Typed errors. The CLI turns every ClcError into one line on stderr and its exit code (EXIT_CODES)."""

from __future__ import annotations

import numbers


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

    exit_code = 5


class TargetMissedError(ClcError):
    """A rate or quality target out of reach, where the caller asked for that to be an error (--strict-target)."""

    exit_code = 6


class WorkerLostError(ClcError):
    """A distributed batch whose worker process died on every try: in a coding job, its inputs' error (failed
    rows, exit 1 like any failed input); in a dictionary build, the build's."""


class UsageError(ClcError):
    """Invalid options or arguments (bad quality, output exists, ...)."""

    exit_code = 2


EXIT_BATCH_FAILED = 1
EXIT_INTERNAL = 70  # a bug (BSD sysexits' EX_SOFTWARE): the message asks for CLC_DEBUG=1
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
# every exit code of `clc`, for --help and README (a test holds them equal)
EXIT_CODES = (
    (0, "success"),
    (EXIT_BATCH_FAILED, "some inputs of a batch failed (each one's error is printed; the others were written)"),
    (UsageError.exit_code, "bad usage: options, arguments, an output that exists or cannot be written"),
    (FormatError.exit_code, "a corrupt, truncated or foreign .clc file, or one over --max-pixels"),
    (ModelError.exit_code, "a missing or mismatched model or dictionary"),
    (ImageError.exit_code, "an input image that cannot be read"),
    (TargetMissedError.exit_code, "a target out of reach, with --strict-target"),
    (EXIT_INTERNAL, "an internal error (a bug: run with CLC_DEBUG=1 for a traceback)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


def check_number(name: str, value: object, low: float | None = None, high: float | None = None, *,
                 integer: bool = False, optional: bool = False) -> None:
    """A public argument that must be a number (a whole one with `integer`) in [low, high], or None with
    `optional`: anything else is a UsageError saying what was expected and what was given."""
    if value is None and optional:
        return
    kind = "a whole number" if integer else "a number"
    bounds = (f" between {low:g} and {high:g}" if low is not None and high is not None else
              f" of at least {low:g}" if low is not None else f" of at most {high:g}" if high is not None else "")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value  # (NaN != NaN)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise UsageError(f"{name} must be {kind}{bounds}, got {value!r}")
