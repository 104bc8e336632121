"""Block copy: reference pictures used in the pixel domain, as inter prediction is in video coding.

A dictionary built with its pictures (`clc build-dict --pictures`) holds its source photos (PNG: exact pixels on
any machine). With such a dictionary and M >= 1 references the encoder looks, for every full B x B block of the
image, for the closest block at any integer position of up to M of those pictures. Where the match is at least
as close to the source as the codec's own reconstruction, the file says "copy from picture p at (y, x)" and the
decoder pastes those pixels over what it synthesised. Before the analysis those blocks are replaced by a smooth
low-pass version of the image, so that their latents cost almost nothing. The encoder keeps the file with copies
only if its real cost (encoder.py) is lower than without.

Nothing here touches the probability path: the paste happens after the synthesis, on uint8 pixels, so it is
exact on every machine and for both decoders (api.Codec and lite.LiteDecoder). Why the latent-domain
references cannot do this with today's analysis transform: docs/references.md.

The section (container kind "copy", docs/format.md):

    B (u8) | P (u8) | P x picture index (varint) | zlib stream of: floor(H/B) x floor(W/B) modes (u8, raster
    order; 0 = the decoded pixels, k = copy from the k-th listed picture), then for each copied block in raster
    order its displacement (source position - block position) minus its prediction, dy then dx, as zigzag
    varints. The prediction is the displacement of the block to the left if that one is copied, else of the
    block above if copied, else of the previous copied block (0, 0 for the first)

This module imports numpy only; the encoder's search (`Matches`, `find_matches`, ...) imports torch when called.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .container import _put_varint, _Reader  # the container's varints (LEB128), with its bounds and errors
from .errors import DictionaryError, FormatError, ReferenceIndexError

if TYPE_CHECKING:
    from torch import Tensor

BLOCK = 16  # the block size the encoder writes (a file may say 4 .. 64)
MIN_BLOCK, MAX_BLOCK = 4, 64
MAX_PICTURES = 64  # pictures one file may copy from (one per reference: at most MAX_REFS)
MAX_SEARCH_PIXELS = 1 << 22  # images and pictures up to 4 MP: the coarse search is global (its cost grows as the
# product of the two sizes), so larger ones are coded without block copy
RANK_SCALE = 8  # pictures are ranked on 8x downscaled images (every picture is looked at)
COARSE = 4  # the search runs on 4x downscaled images first, then refines around the best coarse positions
CANDIDATES = 3  # coarse positions refined per block and picture
REFINE_RADIUS = 5  # full-resolution pixels searched around a coarse position, each way
FILL_POOL = 32  # the smooth fill of copied blocks: the image averaged over 32 x 32 cells, bilinear
# what a copied block's mode and displacement cost after zlib: 5.8 bits measured on synthetic sibling views of
# training photos (benchmarks/copy_bits.py; never the test collections)
COPY_BITS = 6.0


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


def decode_picture(png: bytes) -> np.ndarray:
    """A dictionary picture's pixels, uint8 (h, w, 3) (PNG: the same pixels on every machine)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.format != "PNG":
                raise DictionaryError("corrupt .clcdict: a picture is not a PNG file")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError):
        raise DictionaryError("corrupt .clcdict: a picture does not decode") from None


def encode_picture(pixels: np.ndarray) -> bytes:
    """uint8 (h, w, 3) -> the PNG bytes a dictionary stores."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(buf, "PNG", compress_level=9)
    return buf.getvalue()


class Pictures:
    """A dictionary's pictures as both decoders use them: PNG bytes, decoded on first use and kept."""

    def __init__(self, pngs: list[bytes]) -> None:
        self.pngs = pngs
        self._pixels: dict[int, np.ndarray] = {}
        self._thumbnails: list | None = None

    def __len__(self) -> int:
        return len(self.pngs)

    def pixels(self, index: int, keep: bool = True) -> np.ndarray:
        """Picture `index`, decoded once and kept (`keep=False`: not kept, e.g. to look at every picture)."""
        if index in self._pixels:
            return self._pixels[index]
        px = decode_picture(self.pngs[index])
        if keep:
            self._pixels[index] = px
        return px

    def thumbnails(self) -> list:
        """Every picture as rank_pictures looks at it (thumbnail()), computed once: an encoder of many files
        decodes the pictures for ranking only once (the encoder's only use; imports torch)."""
        if self._thumbnails is None:
            self._thumbnails = [thumbnail(to_unit(self.pixels(i, keep=False))) for i in range(len(self))]
        return self._thumbnails

    def apply(self, pixels: np.ndarray, section: bytes, width: int, height: int) -> np.ndarray:
        """The decoded pixels (uint8 (H, W, 3)) with a file's copy section applied."""
        bc = unpack(section, width, height)
        check_indices(bc, len(self))
        return paste(pixels, bc, [self.pixels(p) for p in bc.pictures])


def block_bits_as_mse(quality: float, block: int) -> float:
    """COPY_BITS of one block expressed as the per-block MSE (on [0, 1]) that costs as much in the encoder's
    real cost lambda * 255^2 * MSE + bpp (effort.rd_cost): what a copy must gain to pay for itself."""
    from .quality import lambda_at

    return COPY_BITS / (lambda_at(quality) * 255**2 * block * block)


def prefer_predicted(bc: BlockCopy, source: np.ndarray, limit: np.ndarray, pictures: list[np.ndarray]) -> BlockCopy:
    """The same copies, but wherever copying from the predicted displacement (in any listed picture) gives a
    per-block MSE against `source` (uint8 (H, W, 3)) of at most `limit` (on [0, 1]: the best match's plus what a
    coded displacement costs), that displacement is taken: in flat or repetitive regions many positions match
    about equally well, and a predicted one costs almost nothing to code. `pictures`: the listed ones."""
    b = bc.block
    modes = bc.modes.copy()
    disp = tuple(a.copy() for a in displacements(bc))
    for (i, j), pred in predictions(modes, disp):
        if (int(disp[0][i, j]), int(disp[1][i, j])) == pred:
            continue
        blk = source[i * b:(i + 1) * b, j * b:(j + 1) * b].astype(np.float64)
        order = [int(modes[i, j])] + [k for k in range(1, len(pictures) + 1) if k != modes[i, j]]
        for k in order:
            pic = pictures[k - 1]
            y, x = i * b + pred[0], j * b + pred[1]
            if not (0 <= y <= pic.shape[0] - b and 0 <= x <= pic.shape[1] - b):
                continue
            d = (pic[y:y + b, x:x + b].astype(np.float64) - blk) / 255
            if float((d * d).mean()) <= limit[i, j]:
                modes[i, j] = k
                disp[0][i, j], disp[1][i, j] = pred
                break
    return from_displacements(b, bc.pictures, modes, disp)


# -- the encoder's search (torch) -----------------------------------------------------------------------------------


@dataclass
class Matches:
    """The best match of every full block over the chosen pictures: mean squared error on [0, 1] pixels, which
    of the chosen pictures (0-based) and the source position."""

    block: int
    pictures: list[int]  # dictionary picture indices, the order of `which`
    mse: np.ndarray  # (nh, nw) float64
    which: np.ndarray  # (nh, nw) int64
    src_y: np.ndarray
    src_x: np.ndarray

    def copy_for(self, use: np.ndarray) -> BlockCopy | None:
        """The section that copies the blocks where `use` is true (None if none), listing only the pictures
        it copies from."""
        if not use.any():
            return None
        used = sorted(set(self.which[use].tolist()))
        slot = {p: k + 1 for k, p in enumerate(used)}
        modes = np.zeros(use.shape, dtype=np.uint8)
        for i, j in zip(*np.nonzero(use)):
            modes[i, j] = slot[int(self.which[i, j])]
        return BlockCopy(self.block, [self.pictures[p] for p in used], modes, self.src_y.copy(), self.src_x.copy())


def to_unit(pixels: np.ndarray) -> "Tensor":
    import torch

    return torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(2, 0, 1).div_(255)


def _ssd_all_positions(blocks: "Tensor", pic: "Tensor") -> tuple["Tensor", "Tensor"]:
    """For kernels (N, C, b, b) and a picture (C, H, W): every kernel's SSD at every position (N, H-b+1, W-b+1),
    reduced to the CANDIDATES best (values and flat positions), computed in chunks of kernels (~64 MB each)."""
    import torch
    import torch.nn.functional as F

    b = blocks.shape[-1]
    chunk = max(1, (1 << 24) // max(1, (pic.shape[1] - b + 1) * (pic.shape[2] - b + 1)))
    box = F.conv2d((pic * pic).sum(0)[None, None], torch.ones(1, 1, b, b))[0, 0]
    k2 = (blocks * blocks).sum((1, 2, 3))
    vals, pos = [], []
    for s in range(0, blocks.shape[0], chunk):
        ssd = box[None] - 2 * F.conv2d(pic[None], blocks[s:s + chunk])[0] + k2[s:s + chunk, None, None]
        v, p = ssd.flatten(1).topk(min(CANDIDATES, ssd[0].numel()), dim=1, largest=False)
        vals.append(v)
        pos.append(p)
    return torch.cat(vals), torch.cat(pos)


def _refine(blocks: "Tensor", pic: "Tensor", cy: "Tensor", cx: "Tensor", chunk: int = 1024
            ) -> tuple["Tensor", "Tensor", "Tensor"]:
    """Full-resolution search in a (2R + 1)^2 window around each candidate top-left (cy, cx) (N candidates for N
    kernels): the best SSD and its position per kernel."""
    import torch
    import torch.nn.functional as F

    n, c, b, _ = blocks.shape
    h, w = pic.shape[1:]
    size = b + 2 * REFINE_RADIUS
    oy = (cy - REFINE_RADIUS).clamp(0, max(h - size, 0))
    ox = (cx - REFINE_RADIUS).clamp(0, max(w - size, 0))
    size_y, size_x = min(size, h), min(size, w)
    ar_y, ar_x = torch.arange(size_y), torch.arange(size_x)
    best_v, best_y, best_x = [], [], []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        rows = (oy[s:e, None] + ar_y)[:, :, None]
        cols = (ox[s:e, None] + ar_x)[:, None, :]
        win = pic[:, rows, cols].permute(1, 0, 2, 3)  # (m, C, size_y, size_x)
        m = e - s
        corr = F.conv2d(win.reshape(1, m * c, size_y, size_x), blocks[s:e], groups=m)[0]  # (m, oh, ow)
        box = F.conv2d((win * win).sum(1, keepdim=True), torch.ones(1, 1, b, b))[:, 0]
        ssd = box - 2 * corr + (blocks[s:e] ** 2).sum((1, 2, 3))[:, None, None]
        v, p = ssd.flatten(1).min(1)
        ow = ssd.shape[-1]
        best_v.append(v)
        best_y.append(oy[s:e] + p // ow)
        best_x.append(ox[s:e] + p % ow)
    return torch.cat(best_v), torch.cat(best_y), torch.cat(best_x)


def _searchable(pic: "Tensor", block: int) -> bool:
    """A picture the search looks at: at least one block, at most MAX_SEARCH_PIXELS."""
    return pic.shape[1] >= block and pic.shape[2] >= block and pic[0].numel() <= MAX_SEARCH_PIXELS


def _blocks(x: "Tensor", b: int) -> "Tensor":
    """(C, H, W) -> (nh * nw, C, b, b), the full blocks in raster order."""
    c = x.shape[0]
    nh, nw = x.shape[1] // b, x.shape[2] // b
    return x[:, : nh * b, : nw * b].unfold(1, b, b).unfold(2, b, b).permute(1, 2, 0, 3, 4).reshape(-1, c, b, b)


def thumbnail(pic: "Tensor", block: int = BLOCK) -> "Tensor | None":
    """A picture (C, H, W) in [0, 1] downscaled RANK_SCALE times for rank_pictures; None if the search does not
    look at it (_searchable)."""
    import torch.nn.functional as F

    return F.avg_pool2d(pic[None], RANK_SCALE)[0] if _searchable(pic, block) else None


def rank_pictures(x: "Tensor", thumbnails: Iterable["Tensor | None"], block: int = BLOCK) -> list[int]:
    """Picture indices (positions in `thumbnails`, the pictures' thumbnail()s) from most to least useful for
    copying blocks of x (C, H, W), by the mean best-match error of its blocks on RANK_SCALE-times downscaled
    images (cheap: it looks at every picture)."""
    import torch.nn.functional as F

    xs = F.avg_pool2d(x[None], RANK_SCALE)[0]
    ks = _blocks(xs, max(block // RANK_SCALE, 1))
    scores = []
    for thumb in thumbnails:
        if thumb is None or not len(ks):
            scores.append(float("inf"))
            continue
        v, _ = _ssd_all_positions(ks, thumb)
        scores.append(float(v[:, 0].clamp_min(0).mean()))
    return sorted(range(len(scores)), key=lambda i: scores[i])


def find_matches(x: "Tensor", pictures: list["Tensor"], indices: list[int], block: int = BLOCK) -> Matches:
    """The best integer-position match of every full block of x (C, H, W) in [0, 1] over `pictures` (their
    dictionary indices: `indices`): a full search on 4x downscaled images, then a full-resolution search around
    the best coarse positions."""
    import torch
    import torch.nn.functional as F

    nh, nw = x.shape[1] // block, x.shape[2] // block
    kb = _blocks(x, block)
    ks = _blocks(F.avg_pool2d(x[None], COARSE)[0], block // COARSE)
    best = torch.full((nh * nw,), float("inf"), dtype=torch.float64)
    which = torch.zeros(nh * nw, dtype=torch.long)
    sy = torch.zeros(nh * nw, dtype=torch.long)
    sx = torch.zeros(nh * nw, dtype=torch.long)
    for k, pic in enumerate(pictures):
        if not _searchable(pic, block) or not len(kb):
            continue
        ps = F.avg_pool2d(pic[None], COARSE)[0]
        _, pos = _ssd_all_positions(ks, ps)
        ow = ps.shape[2] - block // COARSE + 1
        cy = (pos // ow).flatten() * COARSE
        cx = (pos % ow).flatten() * COARSE
        rep = kb.repeat_interleave(pos.shape[1], dim=0)
        v, y, xx = _refine(rep, pic, cy, cx)
        v = v.reshape(-1, pos.shape[1]).double()
        j = v.argmin(1)
        v = v.gather(1, j[:, None])[:, 0]
        y = y.reshape(-1, pos.shape[1]).gather(1, j[:, None])[:, 0]
        xx = xx.reshape(-1, pos.shape[1]).gather(1, j[:, None])[:, 0]
        better = v < best
        best = torch.where(better, v, best)
        which = torch.where(better, torch.full_like(which, k), which)
        sy = torch.where(better, y, sy)
        sx = torch.where(better, xx, sx)
    mse = (best.clamp_min(0) / (x.shape[0] * block * block)).reshape(nh, nw).numpy()
    return Matches(block, list(indices), mse, which.reshape(nh, nw).numpy(), sy.reshape(nh, nw).numpy(),
                   sx.reshape(nh, nw).numpy())


def block_mse(a: np.ndarray, b: np.ndarray, block: int) -> np.ndarray:
    """Mean squared error on [0, 1] per full block of two uint8 (H, W, 3) images."""
    h, w = a.shape[0] // block * block, a.shape[1] // block * block
    d = (a[:h, :w].astype(np.float64) - b[:h, :w].astype(np.float64)) / 255
    return (d * d).reshape(h // block, block, w // block, block, -1).mean((1, 3, 4))


def smooth_fill(x: "Tensor", use: np.ndarray, block: int) -> "Tensor":
    """x (1, C, H, W) with the blocks where `use` is true replaced by its low-pass version (cheap to code: the
    decoder pastes over them)."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    pool = min(FILL_POOL, h, w)
    low = F.interpolate(F.avg_pool2d(x, pool, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False)
    mask = torch.zeros((h, w), dtype=x.dtype, device=x.device)
    m = torch.from_numpy(use.astype(np.float32)).to(x.device, x.dtype)
    mask[: use.shape[0] * block, : use.shape[1] * block] = m.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return x * (1 - mask) + low * mask
