"""The alpha section of a .clc file: the source image's alpha plane, lossless (docs/format.md, *Alpha*).

Its bytes: method (u8, 1) | a zlib stream (RFC 1950) of the height x width plane in row order, each sample
replaced by its difference (mod 256) from the sample on its left; the first column's samples by their difference
from the sample above; the first sample as it is. Masks and soft edges are long runs of zero differences, which
deflate codes in a few bits each.

Reading inflates at most width x height bytes and requires exactly that many, ending the stream: a bomb cannot
grow past the image it claims. numpy and zlib only (no torch, no Pillow).
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import FormatError

METHOD_DELTA_ZLIB = 1
OPAQUE = 255


def has_transparency(alpha: np.ndarray | None) -> bool:
    """Whether an alpha plane holds anything but fully opaque samples (an opaque one is not worth a section)."""
    return alpha is not None and bool((alpha != OPAQUE).any())


def pack_alpha(alpha: np.ndarray) -> bytes:
    """uint8 (H, W) -> the section's bytes."""
    a = np.ascontiguousarray(alpha, dtype=np.uint8)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"an alpha plane is a non-empty 2-D array, got shape {a.shape}")
    d = a.copy()
    d[:, 1:] = a[:, 1:] - a[:, :-1]  # uint8 arithmetic: mod 256
    d[1:, 0] = a[1:, 0] - a[:-1, 0]
    return bytes([METHOD_DELTA_ZLIB]) + zlib.compress(d.tobytes(), 9)


def unpack_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """The section's bytes -> uint8 (height, width); anything else than exactly that plane is a FormatError."""
    if not data or data[0] != METHOD_DELTA_ZLIB:
        raise FormatError(f"corrupt file: unknown alpha coding method {data[0] if data else 'none'}")
    n = width * height
    z = zlib.decompressobj()
    try:
        raw = z.decompress(data[1:], n)
        if not z.eof and not z.unconsumed_tail:
            raw += z.flush(1)  # (a stream may end with an empty block after the last sample)
        complete = z.eof and not z.unconsumed_tail and not z.unused_data
    except zlib.error:
        raise FormatError("corrupt file: the alpha section is not a valid zlib stream") from None
    if len(raw) != n or not complete:
        raise FormatError(f"corrupt file: the alpha section does not hold exactly {width}x{height} samples")
    d = np.frombuffer(raw, np.uint8).reshape(height, width).copy()
    d[:, 0] = np.cumsum(d[:, 0], dtype=np.uint8)
    return np.cumsum(d, axis=1, dtype=np.uint8)
