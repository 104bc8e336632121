"""The residual section of a .clc file: what the lossy layer missed, so that every sample is within ±near of the
source (near 0: lossless). docs/format.md, *Residual section*.

The encoder subtracts the decoder's exact pixels (the exact synthesis, the same on every machine) from the source
and quantises the difference r with step 2·near + 1: q = sign(r) · ⌊(|r| + near) / (2·near + 1)⌋; the decoder
adds q · (2·near + 1) and clips to 0 … 255, which keeps every sample within ±near. Each plane (R, G, B; or the gray
plane of a grayscale source) is cut into B × B blocks, and every block codes its q with one of CLASSES two-sided
geometric distributions (the class its encoder found cheapest), through CompressAI's rANS coder. The class map is
a zlib stream of one byte per block.

Bytes: method (u8, 1) | near (u8) | B (u8) | planes (u8, 1 or 3) | class-map length (varint) | class map (zlib)
| the rANS string of every q, plane by plane, each in row order.

The tables are exact: each class's probabilities are rationals (its ratio is k / 2^16), quantised with integer
arithmetic, so every machine builds the same tables (no floating point on the probability path).
"""

from __future__ import annotations

import functools
import zlib
from fractions import Fraction

import numpy as np

from ..defaults import NEAR_MAX
from ..errors import FormatError
from ..io.images import gray_plane
from .rans import min_bits, padded, rans_module, too_short

METHOD = 1
BLOCK = 16  # what encoders write (a reader takes 4 … 64)
# class k: two-sided geometric, P(q) ∝ θ^|q| with θ = RATIOS[k] / 2^16, whose mean |q| is 0.02 · 1.5^k (0.02 … 224)
RATIOS = (655, 983, 1474, 2209, 3309, 4948, 7371, 10888, 15818, 22282, 29916, 37814, 44978, 50827, 55266, 58479,
          60737, 62295, 63356, 64075, 64558, 64882, 65099, 65245)
CLASSES = len(RATIOS)
PRECISION = 16  # CompressAI's CDF precision
TAIL = Fraction(1, 1 << 12)  # each table covers the values whose tail beyond them holds less than this
MAX_VALUE = 255  # |q| never exceeds it (|r| <= 255)


@functools.lru_cache(maxsize=None)
def tables() -> tuple[list[list[int]], list[int], list[int]]:
    """(CDFs, CDF lengths, offsets) of every class, as CompressAI's coder takes them."""
    cdfs, lengths, offsets = [], [], []
    total = 1 << PRECISION
    for k in range(CLASSES):
        t = Fraction(RATIOS[k], 1 << 16)
        reach = 0  # the largest |q| in the table: P(|q| > reach) = 2 t^(reach+1) / (1 + t) < TAIL
        while reach < MAX_VALUE and 2 * t ** (reach + 1) / (1 + t) >= TAIL:
            reach += 1
        n = 2 * reach + 1
        share = total - n - 1  # every value and the escape get at least 1
        pmf = [(1 - t) / (1 + t) * t ** abs(v) for v in range(-reach, reach + 1)]
        freq = [1 + (p * share).__floor__() for p in pmf]
        freq.append(total - sum(freq))  # the escape (values beyond the table, coded in bypass)
        cdf = [0]
        for f in freq:
            cdf.append(cdf[-1] + f)
        cdfs.append(cdf)
        lengths.append(len(cdf))
        offsets.append(-reach)
    return cdfs, lengths, offsets


@functools.lru_cache(maxsize=None)
def _bits() -> np.ndarray:
    """Estimated bits of every value -255 … 255 under every class (escapes: the escape symbol + ~2 log2|q| + 4)."""
    cdfs, _, offsets = tables()
    values = np.arange(-MAX_VALUE, MAX_VALUE + 1)
    out = np.empty((CLASSES, values.size))
    for k, (cdf, off) in enumerate(zip(cdfs, offsets)):
        freq = np.diff(np.asarray(cdf, dtype=np.float64))
        idx = values - off
        inside = (idx >= 0) & (idx < freq.size - 1)
        escape = -np.log2(freq[-1] / (1 << PRECISION)) + 2 * np.log2(np.abs(values) + 1) + 4
        out[k] = np.where(inside, -np.log2(freq[np.clip(idx, 0, freq.size - 1)] / (1 << PRECISION)), escape)
    return out


def quantize(residual: np.ndarray, near: int) -> np.ndarray:
    step = 2 * near + 1
    return np.sign(residual) * ((np.abs(residual) + near) // step)


def reconstruct(base: np.ndarray, q: np.ndarray, near: int) -> np.ndarray:
    return np.clip(base.astype(np.int32) + q * (2 * near + 1), 0, 255).astype(np.uint8)


def planes_of(pixels: np.ndarray, grayscale: bool) -> np.ndarray:
    """(planes, H, W) int32: R, G, B, or the gray plane the decoder shows for a grayscale source."""
    if grayscale:
        return gray_plane(pixels)[None].astype(np.int32)
    return np.moveaxis(pixels, 2, 0).astype(np.int32)


def pack_residual(source: np.ndarray, decoded: np.ndarray, grayscale: bool, near: int,
                  block: int = BLOCK) -> bytes:
    """The section for `source` (uint8 H x W x 3) over `decoded` (the exact pixels the lossy layer decodes to)."""
    if not 0 <= near <= NEAR_MAX:
        raise ValueError(f"near must be 0 … {NEAR_MAX}")
    src, base = planes_of(source, grayscale), planes_of(decoded, grayscale)
    q = quantize(src - base, near)
    p, h, w = q.shape
    by, bx = -(-h // block), -(-w // block)
    bits = _bits()
    grid = np.zeros((p, by * block, bx * block), np.int64)  # q + MAX_VALUE on whole blocks
    grid[:, :h, :w] = q + MAX_VALUE
    inside = np.zeros((by * block, bx * block), bool)
    inside[:h, :w] = True
    costs = np.empty((CLASSES, p, by, bx))
    for k in range(CLASSES):
        c = np.where(inside, bits[k][grid], 0.0)
        costs[k] = c.reshape(p, by, block, bx, block).sum(axis=(2, 4))
    classes = costs.argmin(axis=0).astype(np.uint8)
    cmap = zlib.compress(classes.tobytes(), 9)
    index = np.repeat(np.repeat(classes, block, axis=1), block, axis=2)[:, :h, :w]
    cdfs, lengths, offsets = tables()
    string = rans_module().RansEncoder().encode_with_indexes(q.reshape(-1).tolist(), index.reshape(-1).tolist(),
                                                             cdfs, lengths, offsets)
    out = bytearray([METHOD, near, block, p])
    n = len(cmap)
    while True:  # varint (LEB128), as the container's
        out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    return bytes(out) + cmap + string


def apply_residual(decoded: np.ndarray, data: bytes, grayscale: bool) -> np.ndarray:
    """The enhanced pixels (uint8 H x W x 3) from the lossy layer's exact pixels and the section's bytes; a
    damaged section is a FormatError."""
    h, w = decoded.shape[:2]
    if len(data) < 5 or data[0] != METHOD:
        raise FormatError(f"corrupt file: unknown residual coding method {data[0] if data else 'none'}")
    near, block, p = data[1], data[2], data[3]
    if near > NEAR_MAX or not 4 <= block <= 64 or p != (1 if grayscale else 3):
        raise FormatError("corrupt file: impossible residual section parameters")
    n, shift, pos = 0, 0, 4
    while True:
        if pos >= len(data) or shift > 28:
            raise FormatError("corrupt file: the residual section's class map length is not a valid varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    by, bx = -(-h // block), -(-w // block)
    z = zlib.decompressobj()
    try:
        raw = z.decompress(data[pos : pos + n], p * by * bx)
        complete = z.eof and not z.unconsumed_tail and not z.unused_data
    except zlib.error:
        raise FormatError("corrupt file: the residual section's class map is not a valid zlib stream") from None
    if len(raw) != p * by * bx or not complete or pos + n > len(data):
        raise FormatError("corrupt file: the residual section's class map does not fit the image")
    classes = np.frombuffer(raw, np.uint8).reshape(p, by, bx)
    if classes.max() >= CLASSES:
        raise FormatError("corrupt file: unknown residual class")
    string = data[pos + n :]
    # the fewest bits the symbols can cost, from each class's sample count (before any per-sample array exists)
    area = np.outer(np.minimum(block, h - block * np.arange(by)), np.minimum(block, w - block * np.arange(bx)))
    counts = np.bincount(classes.reshape(-1), weights=np.broadcast_to(area, classes.shape).reshape(-1),
                         minlength=CLASSES)
    if too_short(string, float(counts @ _table_bits())):
        raise FormatError(f"corrupt file: the residual's entropy-coded data ({len(string)} bytes) is too short "
                          f"for a {w}x{h} image")
    index = np.repeat(np.repeat(classes, block, axis=1), block, axis=2)[:, :h, :w].reshape(-1)
    cdfs, lengths, offsets = tables()
    try:
        values = rans_module().RansDecoder().decode_with_indexes(padded(string, index.size), index.tolist(), cdfs,
                                                                 lengths, offsets)
    except (RuntimeError, ValueError) as e:
        raise FormatError(f"corrupt file: the residual does not decode ({e.__class__.__name__})") from None
    q = np.clip(np.asarray(values, dtype=np.int64), -MAX_VALUE, MAX_VALUE).reshape(p, h, w)
    base = planes_of(decoded, grayscale)
    out = reconstruct(base, q, near)
    return np.repeat(out[0][:, :, None], 3, axis=2) if grayscale else np.ascontiguousarray(np.moveaxis(out, 0, 2))


@functools.lru_cache(maxsize=None)
def _table_bits() -> np.ndarray:
    cdfs, lengths, _ = tables()
    width = max(lengths)
    return min_bits(np.array([c + [c[-1]] * (width - len(c)) for c in cdfs]), lengths)
