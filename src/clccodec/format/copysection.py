"""The block-copy section of a .clc file: its bytes, its checks, and what a decoder applies.

Block copy uses reference pictures in the pixel domain, as inter prediction is in video coding. For each block
of the image the section says one of: keep the decoded pixels; *copy* the B x B pixels of picture p at (y, x)
over them; or *add the detail* of picture p at (y, x) to them. A picture's detail is the picture minus its
low-pass (`lowpass`: two 17 x 17 box means, in integers, so every machine computes the same values). With detail
blocks the encoder codes the image minus the prediction's detail, which the decoder adds back: the codec then
codes only the smooth part of such blocks and whatever the prediction got wrong (brightness, misalignment,
parallax), instead of all or nothing (the encoder's search: encoding/blockcopy.py; the pictures:
dictionary/pictures.py). The paste happens after the synthesis, on 8-bit pixels with integer arithmetic, so it
is exact on every machine and for both decoder backends.

The section (container kind "copy", docs/format.md):

    B (u8; + 128: quarter-pixel displacements) | P (u8) | P x picture index (varint) | zlib stream of:
    floor(H/B) x floor(W/B) modes (u8, raster
    order; 0 = the decoded pixels, k <= P = copy from the k-th listed picture, P < k <= 2P = add the detail of
    the (k - P)-th listed picture), then for each block of mode > 0 in raster order its displacement (source
    position - block position) minus its prediction, dy then dx, as zigzag varints. The prediction is the
    displacement of the block to the left if its mode is > 0, else of the block above if > 0, else of the
    previous such block (0, 0 for the first). With quarter-pixel displacements, positions and displacements
    count quarter pixels, and a block at a fractional position is interpolated (`sample`: HEVC's 4-tap chroma
    filters, in integers)

Bytes and numpy only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .container import _put_varint, _Reader  # the container's varints (LEB128), with its bounds and errors
from ..errors import FormatError, ReferenceIndexError

BLOCK = 16  # the block size the encoder writes (a file may say 4 .. 64)
MIN_BLOCK, MAX_BLOCK = 4, 64
MAX_PICTURES = 64  # pictures one file may copy from (one per reference: at most MAX_REFS)
DETAIL_RADIUS = 8  # a picture's low-pass: two box means of (2R + 1)^2 pixels (edges replicated), rounded once
QUARTER_FLAG = 0x80  # in the block-size byte: displacements count quarter pixels
# the interpolation filter of quarter-pixel positions: taps at offsets -1, 0, +1, +2 for phases 0/4 ... 3/4
# (HEVC's chroma filter at eighths 0, 2, 4, 6), each summing to 64
QUARTER_TAPS = ((0, 64, 0, 0), (-4, 54, 16, -2), (-4, 36, 36, -4), (-2, 16, 54, -4))


@dataclass
class BlockCopy:
    """What a file's copy section says: per block, 0 (keep the decoded pixels), k <= P (copy from
    pictures[k-1]) or P < k <= 2P (add the detail of pictures[k-P-1]), and where in that picture the block's
    top-left corner comes from (P = len(pictures))."""

    block: int
    pictures: list[int]  # dictionary picture indices
    modes: np.ndarray  # (nh, nw) uint8
    src_y: np.ndarray  # (nh, nw) int64, meaningful where modes > 0 (in quarter pixels if `quarter`)
    src_x: np.ndarray
    quarter: bool = False  # positions and displacements count quarter pixels

    @property
    def scale(self) -> int:
        """Position units per pixel."""
        return 4 if self.quarter else 1

    @property
    def copied(self) -> int:
        """Blocks taken wholesale from a picture."""
        return int(((self.modes > 0) & (self.modes <= len(self.pictures))).sum())

    @property
    def detailed(self) -> int:
        """Blocks that add a picture's detail to the decoded pixels."""
        return int((self.modes > len(self.pictures)).sum())


def grid(width: int, height: int, block: int) -> tuple[int, int]:
    """Full blocks per column and per row (partial blocks at the right and bottom edges are never copied)."""
    return height // block, width // block


# -- bytes ----------------------------------------------------------------------------------------------------------


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return (z >> 1) if not z & 1 else -((z + 1) >> 1)


def pack(bc: BlockCopy) -> bytes:
    out = bytearray([bc.block | (QUARTER_FLAG if bc.quarter else 0), len(bc.pictures)])
    for p in bc.pictures:
        _put_varint(out, int(p))
    payload = bytearray(np.ascontiguousarray(bc.modes, dtype=np.uint8).tobytes())
    disp = displacements(bc)
    for (i, j), pred in predictions(bc.modes, disp):
        _put_varint(payload, _zigzag(int(disp[0][i, j]) - pred[0]))
        _put_varint(payload, _zigzag(int(disp[1][i, j]) - pred[1]))
    return bytes(out + zlib.compress(bytes(payload), 9))


def _block_origins(shape: tuple[int, int], block: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(shape[0])[:, None] * block, np.arange(shape[1])[None, :] * block


def displacements(bc: BlockCopy) -> tuple[np.ndarray, np.ndarray]:
    """Source position minus block position, (dy, dx) per block (in the section's units)."""
    oy, ox = _block_origins(bc.modes.shape, bc.block * bc.scale)
    return bc.src_y - oy, bc.src_x - ox


def from_displacements(block: int, pictures: list[int], modes: np.ndarray,
                       disp: tuple[np.ndarray, np.ndarray], quarter: bool = False) -> BlockCopy:
    """The BlockCopy whose displacements (dy, dx) per block are `disp` (the inverse of `displacements`)."""
    oy, ox = _block_origins(modes.shape, block * (4 if quarter else 1))
    return BlockCopy(block, list(pictures), modes, disp[0] + oy, disp[1] + ox, quarter)


def predictions(modes: np.ndarray, disp: tuple[np.ndarray, np.ndarray]):
    """(block, predicted displacement) of every block of mode > 0 in raster order; `disp` must hold the displacements
    of the blocks already visited (the decoder fills it in as it goes)."""
    last = (0, 0)
    for i, j in zip(*np.nonzero(modes)):
        if j > 0 and modes[i, j - 1]:
            pred = (int(disp[0][i, j - 1]), int(disp[1][i, j - 1]))
        elif i > 0 and modes[i - 1, j]:
            pred = (int(disp[0][i - 1, j]), int(disp[1][i - 1, j]))
        else:
            pred = last
        yield (int(i), int(j)), pred
        last = (int(disp[0][i, j]), int(disp[1][i, j]))


def unpack(data: bytes, width: int, height: int) -> BlockCopy:
    """Parse a copy section of a width x height image (the dictionary's side: `check_indices`, `check_inside`)."""
    r = _Reader(bytes(data), len(data))
    block = r.u8("copy section")
    quarter = bool(block & QUARTER_FLAG)
    block &= ~QUARTER_FLAG
    n = r.u8("copy section")
    if not MIN_BLOCK <= block <= MAX_BLOCK or not 1 <= n <= MAX_PICTURES:
        raise FormatError(f"corrupt file: copy section with block size {block} and {n} pictures")
    pictures = [r.varint("copy section picture index", 1 << 31) for _ in range(n)]
    nh, nw = grid(width, height, block)
    d = zlib.decompressobj()
    try:  # a displacement pair takes at most 2 x 5 bytes: bound what a corrupt stream may inflate to
        payload = d.decompress(bytes(data[r.pos:]), nh * nw * 11 + 16)
    except zlib.error:
        raise FormatError("corrupt file: the copy section does not decompress") from None
    if d.unconsumed_tail or d.unused_data or not d.eof:
        raise FormatError("corrupt file: the copy section does not decompress")
    if len(payload) < nh * nw:
        raise FormatError("corrupt file: the copy section is truncated")
    modes = np.frombuffer(payload[: nh * nw], dtype=np.uint8).reshape(nh, nw).copy()
    if modes.max(initial=0) > 2 * n:
        raise FormatError(f"corrupt file: block mode {int(modes.max())} with {n} listed pictures (at most {2 * n})")
    disp = (np.zeros((nh, nw), dtype=np.int64), np.zeros((nh, nw), dtype=np.int64))
    rest = payload[nh * nw:]
    rd = _Reader(rest, len(rest))
    for (i, j), pred in predictions(modes, disp):
        for axis in (0, 1):
            disp[axis][i, j] = pred[axis] + _unzigzag(rd.varint("copy section displacement", 1 << 32))
    if rd.pos != len(rest):
        raise FormatError("corrupt file: unexpected bytes at the end of the copy section")
    return from_displacements(block, pictures, modes, disp, quarter)


def check_indices(bc: BlockCopy, picture_count: int) -> None:
    """The section's picture indices exist in a dictionary of `picture_count` pictures."""
    bad = [p for p in bc.pictures if not 0 <= p < picture_count]
    if bad:
        raise ReferenceIndexError(f"corrupt file: copy from picture {bad[0]}, the dictionary has {picture_count}")


def check_inside(bc: BlockCopy, sizes: list[tuple[int, int]]) -> None:
    """Every source block lies inside its picture (`sizes`: (height, width) of the listed pictures)."""
    n = len(bc.pictures)
    for k, (h, w) in enumerate(sizes, start=1):
        sel = (bc.modes == k) | (bc.modes == k + n)
        if not sel.any():
            continue
        y, x = bc.src_y[sel] // bc.scale, bc.src_x[sel] // bc.scale  # the whole pixel at or up-left of the position
        if y.min() < 0 or x.min() < 0 or y.max() + bc.block > h or x.max() + bc.block > w:
            raise FormatError("corrupt file: a predicted block lies outside its picture")


def sample(image: np.ndarray, y: int, x: int, block: int, quarter: bool) -> np.ndarray:
    """The block x block values of `image` (h, w, 3) at position (y, x) (in quarter pixels if `quarter`) as
    int64: taken as they are at a whole-pixel position, else interpolated with QUARTER_TAPS, rows then columns
    (edges replicated), the sum of products rounded once: (s + 2048) >> 12. `check_inside` bounds (y, x)."""
    if not quarter or not (y & 3 or x & 3):
        s = 4 if quarter else 1
        return image[y // s:y // s + block, x // s:x // s + block].astype(np.int64)
    iy, ix = y >> 2, x >> 2
    h, w = image.shape[:2]
    rows = np.clip(np.arange(iy - 1, iy + block + 2), 0, h - 1)
    cols = np.clip(np.arange(ix - 1, ix + block + 2), 0, w - 1)
    return interpolate(image[rows[:, None], cols[None, :]].astype(np.int64), y & 3, x & 3)


def interpolate(window: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The values at (y + fy/4, x + fx/4) for every (y, x) of a window of integers (h + 3, w + 3, C) that holds
    one row/column before and two after them: QUARTER_TAPS along rows (phase fx), then columns (phase fy),
    rounded once, (s + 2048) >> 12; (h, w, C) in the window's dtype."""
    h, w = window.shape[0] - 3, window.shape[1] - 3
    across = sum(t * window[:, k:k + w] for k, t in enumerate(QUARTER_TAPS[fx]) if t)
    return (sum(t * across[k:k + h] for k, t in enumerate(QUARTER_TAPS[fy]) if t) + 2048) >> 12


def _box_sum(a: np.ndarray, axis: int, r: int) -> np.ndarray:
    """Sums over 2r + 1 samples along `axis` centred on each sample, edges replicated (int64)."""
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a.astype(np.int64), pad, mode="edge"), axis=axis)
    k = 2 * r + 1
    hi = np.take(c, np.arange(k, c.shape[axis]), axis=axis)
    lo = np.take(c, np.arange(0, c.shape[axis] - k), axis=axis)
    return hi - lo


def lowpass(pixels: np.ndarray, radius: int = DETAIL_RADIUS) -> np.ndarray:
    """The format's low-pass of uint8 (h, w, 3) pixels: two box means of (2R + 1)^2 pixels, edges replicated,
    summed in integers and rounded once (half up): int64, the same on every machine."""
    s = pixels
    for _ in range(2):
        s = _box_sum(_box_sum(s, 0, radius), 1, radius)
    weight = (2 * radius + 1) ** 4
    return (s + weight // 2) // weight


def detail(pixels: np.ndarray) -> np.ndarray:
    """A picture minus its low-pass: what a detail block adds (int16 (h, w, 3), -255 ... 255)."""
    return (pixels.astype(np.int16) - lowpass(pixels).astype(np.int16))


def added_detail(bc: BlockCopy, details: dict[int, np.ndarray], height: int, width: int) -> np.ndarray:
    """What the section's detail blocks add to the decoded pixels: int16 (height, width, 3), zero elsewhere.
    `details`: detail() of each listed picture (0-based) that a detail block uses."""
    out = np.zeros((height, width, 3), dtype=np.int16)
    b, n = bc.block, len(bc.pictures)
    for i, j in zip(*np.nonzero(bc.modes > n)):
        out[i * b:(i + 1) * b, j * b:(j + 1) * b] = sample(details[int(bc.modes[i, j]) - n - 1], int(bc.src_y[i, j]),
                                                           int(bc.src_x[i, j]), b, bc.quarter)
    return out


def paste(pixels: np.ndarray, bc: BlockCopy, pictures: list[np.ndarray],
          details: list[np.ndarray] | None = None) -> np.ndarray:
    """The decoded pixels (uint8 (H, W, 3)) with the section applied: the detail blocks' detail added (clipped
    to 0 ... 255), the copied blocks pasted from `pictures` (the listed ones, in order, uint8 (h, w, 3)).
    `details`: detail() of the listed pictures when already computed (else computed for those used)."""
    check_inside(bc, [p.shape[:2] for p in pictures])
    n, b = len(bc.pictures), bc.block
    used = {int(k) - n - 1 for k in np.unique(bc.modes) if k > n}
    if used:
        add = added_detail(bc, {k: details[k] if details is not None else detail(pictures[k]) for k in used},
                           *pixels.shape[:2])
        out = np.clip(pixels.astype(np.int16) + add, 0, 255).astype(np.uint8)
    else:
        out = pixels.copy()
    for i, j in zip(*np.nonzero((bc.modes > 0) & (bc.modes <= n))):
        block = sample(pictures[int(bc.modes[i, j]) - 1], int(bc.src_y[i, j]), int(bc.src_x[i, j]), b, bc.quarter)
        out[i * b:(i + 1) * b, j * b:(j + 1) * b] = np.clip(block, 0, 255)
    return out
