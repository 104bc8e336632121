"""What both decoders share (api.Codec with torch, lite.LiteDecoder without): the result of a decode, the
checks of a file against the loaded model and dictionary, the ways to fill missing slices. No torch here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .container import ClcFile
from .errors import DictionaryError, DictionaryMismatchError, FormatError, ModelMismatchError
from .ids import file_id
from .quality import quality_is_valid
from .release import describe_model_mismatch

DETAIL_MODES = ("mean", "sample")  # how the slices a file lacks are filled (progressive.py)


def padded(string: bytes, symbols: int) -> bytes:
    """The string followed by zero bytes, for CompressAI's rANS decoder, which does not bound its reads.

    A valid string is never read past its end. A corrupt one can drive the decoder beyond it: every symbol
    consumes at most 16 bits (the CDF precision) and bypass runs stop on zero bits, so 2 bytes per symbol of
    zeros keep every read inside this buffer, and the result deterministic.
    """
    return string + bytes(2 * symbols + 64)


@dataclass
class DecodeResult:
    pixels: np.ndarray  # uint8 (H, W, 3)
    grayscale: bool
    metadata: dict[str, bytes]  # ICC / EXIF / XMP sections of the file (metadata.py)
    slices_used: int  # slice strings decoded; the rest (slices_total - slices_used) were filled (progressive.py)
    slices_total: int
    truncated: bool  # the file ended early (only with partial=True)


def with_copies(pixels: np.ndarray, f: ClcFile, dictionary: Any) -> np.ndarray:
    """The decoded pixels with the file's copy section (blockcopy.py) applied; `dictionary`: the loaded one (a
    file with a copy section has references, so check_file has made sure it is there and is the right one)."""
    if not f.block_copy:
        return pixels
    return dictionary.pictures.apply(pixels, f.block_copy, f.width, f.height)


def check_file(f: ClcFile, model_id: bytes, slices: int, dictionary: Callable[[], Any]) -> None:
    """What the container cannot check alone: this file against the loaded model (its full id and slice count)
    and dictionary (`dictionary()` -> the loaded one, with a .file_id, or None; asked only for files with
    references). Both decoders (this one and api.Codec) check with it."""
    from .imageio import MAX_PIXELS

    if f.width * f.height > MAX_PIXELS:  # the encoder never writes one: refuse before allocating anything
        raise FormatError(f"corrupt file: {f.width}x{f.height} is too large (this build codes at most "
                          f"{MAX_PIXELS:,} pixels)")
    if f.model_id != file_id(model_id):
        raise ModelMismatchError(describe_model_mismatch(f.model_id, model_id, f.num_refs > 0))
    if f.slices_total != slices:
        raise FormatError(f"corrupt file: {f.slices_total} slices, the model codes {slices}")
    if not quality_is_valid(f.quality):
        raise FormatError(f"corrupt file: quality {f.quality} out of range")
    if f.num_refs:
        d = dictionary()
        if d is None:
            raise DictionaryError(f"this file needs reference dictionary {f.dictionary_id.hex()}; "
                                  "none is loaded (pass --dict)")
        if f.dictionary_id != d.file_id:
            raise DictionaryMismatchError(
                f"this file needs reference dictionary {f.dictionary_id.hex()}, but the loaded dictionary "
                f"is {d.file_id.hex()} (pass the right --dict)")
