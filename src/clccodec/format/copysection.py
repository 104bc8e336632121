"""The block-copy section of a .clc file: its bytes, its checks, and the paste a decoder applies.

Block copy uses reference pictures in the pixel domain, as inter prediction is in video coding: where a block of
a dictionary picture (`clc build-dict --pictures`) is at least as close to the source as the codec's own
reconstruction, the file says "copy from picture p at (y, x)" and the decoder pastes those pixels over what it
synthesised (the encoder's search: encoding/blockcopy.py; the pictures: dictionary/pictures.py). The paste
happens after the synthesis, on uint8 pixels, so it is exact on every machine and for both decoder backends.

The section (container kind "copy", docs/format.md):

    B (u8) | P (u8) | P x picture index (varint) | zlib stream of: floor(H/B) x floor(W/B) modes (u8, raster
    order; 0 = the decoded pixels, k = copy from the k-th listed picture), then for each copied block in raster
    order its displacement (source position - block position) minus its prediction, dy then dx, as zigzag
    varints. The prediction is the displacement of the block to the left if that one is copied, else of the
    block above if copied, else of the previous copied block (0, 0 for the first)

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


@dataclass
class BlockCopy:
    """What a file's copy section says: per block, 0 (keep the decoded pixels) or k (copy from pictures[k-1])
    and where in that picture the block's top-left corner comes from."""

    block: int
    pictures: list[int]  # dictionary picture indices
    modes: np.ndarray  # (nh, nw) uint8
    src_y: np.ndarray  # (nh, nw) int64, meaningful where modes > 0
    src_x: np.ndarray

    @property
    def copied(self) -> int:
        return int((self.modes > 0).sum())


def grid(width: int, height: int, block: int) -> tuple[int, int]:
    """Full blocks per column and per row (partial blocks at the right and bottom edges are never copied)."""
    return height // block, width // block


# -- bytes ----------------------------------------------------------------------------------------------------------


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return (z >> 1) if not z & 1 else -((z + 1) >> 1)


def pack(bc: BlockCopy) -> bytes:
    out = bytearray([bc.block, len(bc.pictures)])
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
    """Source position minus block position, (dy, dx) per block."""
    oy, ox = _block_origins(bc.modes.shape, bc.block)
    return bc.src_y - oy, bc.src_x - ox


def from_displacements(block: int, pictures: list[int], modes: np.ndarray,
                       disp: tuple[np.ndarray, np.ndarray]) -> BlockCopy:
    """The BlockCopy whose displacements (dy, dx) per block are `disp` (the inverse of `displacements`)."""
    oy, ox = _block_origins(modes.shape, block)
    return BlockCopy(block, list(pictures), modes, disp[0] + oy, disp[1] + ox)


def predictions(modes: np.ndarray, disp: tuple[np.ndarray, np.ndarray]):
    """(block, predicted displacement) of every copied block in raster order; `disp` must hold the displacements
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
    if modes.max(initial=0) > n:
        raise FormatError(f"corrupt file: a block copies from picture {int(modes.max())} of {n}")
    disp = (np.zeros((nh, nw), dtype=np.int64), np.zeros((nh, nw), dtype=np.int64))
    rest = payload[nh * nw:]
    rd = _Reader(rest, len(rest))
    for (i, j), pred in predictions(modes, disp):
        for axis in (0, 1):
            disp[axis][i, j] = pred[axis] + _unzigzag(rd.varint("copy section displacement", 1 << 32))
    if rd.pos != len(rest):
        raise FormatError("corrupt file: unexpected bytes at the end of the copy section")
    return from_displacements(block, pictures, modes, disp)


def check_indices(bc: BlockCopy, picture_count: int) -> None:
    """The section's picture indices exist in a dictionary of `picture_count` pictures."""
    bad = [p for p in bc.pictures if not 0 <= p < picture_count]
    if bad:
        raise ReferenceIndexError(f"corrupt file: copy from picture {bad[0]}, the dictionary has {picture_count}")


def check_inside(bc: BlockCopy, sizes: list[tuple[int, int]]) -> None:
    """Every source block lies inside its picture (`sizes`: (height, width) of the listed pictures)."""
    for k, (h, w) in enumerate(sizes, start=1):
        sel = bc.modes == k
        if sel.any() and (bc.src_y[sel].min() < 0 or bc.src_x[sel].min() < 0 or bc.src_y[sel].max() + bc.block > h
                          or bc.src_x[sel].max() + bc.block > w):
            raise FormatError("corrupt file: a copied block lies outside its picture")


def paste(pixels: np.ndarray, bc: BlockCopy, pictures: list[np.ndarray]) -> np.ndarray:
    """The decoded pixels (uint8 (H, W, 3)) with the copied blocks pasted from `pictures` (the listed ones, in
    order, uint8 (h, w, 3))."""
    check_inside(bc, [p.shape[:2] for p in pictures])
    out = pixels.copy()
    b = bc.block
    for i, j in zip(*np.nonzero(bc.modes)):
        pic = pictures[int(bc.modes[i, j]) - 1]
        sy, sx = int(bc.src_y[i, j]), int(bc.src_x[i, j])
        out[i * b:(i + 1) * b, j * b:(j + 1) * b] = pic[sy:sy + b, sx:sx + b]
    return out
