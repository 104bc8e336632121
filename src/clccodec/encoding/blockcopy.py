"""Block copy, the encoder's side: find, for every full block of the image, the closest block at any position (to
a quarter pixel) of up to M dictionary pictures, and decide which blocks take the prediction's detail or are
copied.

With a dictionary that holds its pictures and M >= 1 references, the search runs on the images' detail (each
image minus its low-pass, format/copysection.detail): it finds where a picture holds the same texture whatever the
brightness. Every full B x B block whose match removes at least half of the block's detail energy becomes a
*detail* block: the encoder codes the image minus the matched detail, and the decoder adds that detail back after
the synthesis (format/copysection.py holds the section's bytes and the decoder's paste). The codec thus codes a
smooth image plus whatever the prediction misses. Afterwards, detail blocks whose matched pixels, copied as they
are, beat the decoded block by what signalling the copy costs become *copy* blocks. The encoder keeps the file
with the section only if its real cost (encoder.py) is lower than without. Why the latent-domain references
cannot do this with today's analysis transform: docs/references.md.

Imports numpy; the search functions import torch when called.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..format.copysection import (BLOCK, BlockCopy, displacements, from_displacements, interpolate, predictions,
                                  sample)

if TYPE_CHECKING:
    from torch import Tensor

MAX_SEARCH_PIXELS = 1 << 22  # images and pictures up to 4 MP: the coarse search is global (its cost grows as the
# product of the two sizes), so larger ones are coded without block copy
RANK_SCALE = 8  # pictures are ranked on 8x downscaled images (every picture is looked at)
COARSE = 4  # the search runs on 4x downscaled images first, then refines around the best coarse positions
CANDIDATES = 3  # coarse positions refined per block and picture
REFINE_RADIUS = 5  # full-resolution pixels searched around a coarse position, each way
QUARTER_RADIUS = 3  # quarter pixels searched around the best whole-pixel position, each way
# a block takes the prediction's detail where the match leaves at most this share of the block's detail energy
# (chosen on synthetic sibling views of training photos, never on the test collections)
DETAIL_SHARE = 0.5
# what a block's mode and displacement cost after zlib: 5.8 bits measured on synthetic sibling views of
# training photos (benchmarks/copy_bits.py, since removed; never the test collections)
COPY_BITS = 6.0


def block_bits_as_mse(quality: float, block: int) -> float:
    """COPY_BITS of one block expressed as the per-block MSE (on [0, 1]) that costs as much in the encoder's
    real cost lambda * 255^2 * MSE + bpp (effort.rd_cost): what a copy must gain to pay for itself."""
    from ..model.quality import lambda_at, mse_worth

    return mse_worth(COPY_BITS / (block * block), lambda_at(quality))


def detail_unit(det: np.ndarray) -> "Tensor":
    """An image's detail (copysection.detail, int16 (H, W, 3)) as a float32 (3, H, W) tensor on the [0, 1]
    scale: what the search matches."""
    import torch

    return torch.from_numpy(det.astype(np.float32)).permute(2, 0, 1).div_(255)


def block_energy(a: np.ndarray, block: int) -> np.ndarray:
    """Mean square per full block of (H, W, C) values on the [0, 255] scale, returned on the [0, 1] scale."""
    h, w = a.shape[0] // block * block, a.shape[1] // block * block
    d = a[:h, :w].astype(np.float64) / 255
    return (d * d).reshape(h // block, block, w // block, block, -1).mean((1, 3, 4))


def block_mse(a: np.ndarray, b: np.ndarray, block: int) -> np.ndarray:
    """Mean squared error on [0, 1] per full block of two uint8 (H, W, 3) images."""
    return block_energy(a.astype(np.int16) - b.astype(np.int16), block)


def prefer_predicted(bc: BlockCopy, source: np.ndarray, limit: np.ndarray, pictures: list[np.ndarray]) -> BlockCopy:
    """The same blocks, but wherever the block's predicted displacement (in any listed picture) gives a per-block
    MSE against `source` (H, W, 3) of at most `limit` (on [0, 1]: the best match's plus what a coded displacement
    costs), that displacement is taken: in flat or repetitive regions many positions match about equally well,
    and a predicted one costs almost nothing to code. `source` and `pictures` (the listed ones) on the [0, 255]
    scale, as the search compared them: the encoder calls it on detail blocks with the images' detail."""
    b, n, s = bc.block, len(bc.pictures), bc.scale
    modes = bc.modes.copy()
    disp = tuple(a.copy() for a in displacements(bc))
    for (i, j), pred in predictions(modes, disp):
        if (int(disp[0][i, j]), int(disp[1][i, j])) == pred:
            continue
        blk = source[i * b:(i + 1) * b, j * b:(j + 1) * b].astype(np.float64)
        offset = n if modes[i, j] > n else 0  # the block keeps its kind (copy or detail)
        own = int(modes[i, j]) - offset
        for k in [own] + [k for k in range(1, n + 1) if k != own]:
            pic = pictures[k - 1]
            y, x = i * b * s + pred[0], j * b * s + pred[1]
            if not (0 <= y // s <= pic.shape[0] - b and 0 <= x // s <= pic.shape[1] - b):
                continue
            d = (sample(pic, y, x, b, bc.quarter) - blk) / 255
            if float((d * d).mean()) <= limit[i, j]:
                modes[i, j] = k + offset
                disp[0][i, j], disp[1][i, j] = pred
                break
    return from_displacements(b, bc.pictures, modes, disp, bc.quarter)


def copy_where_better(bc: BlockCopy, source: np.ndarray, decoded: np.ndarray, pictures: list[np.ndarray],
                      margin: float) -> BlockCopy:
    """Detail blocks whose matched pixels, copied as they are, are closer to `source` than `decoded` (the
    decoder's pixels with the section applied) by at least `margin` (MSE on [0, 1]) become copy blocks. (The
    switch itself costs no bits; the encoder passes a block's signalling cost as a margin of safety, which is
    how the published results were measured.)"""
    b, n = bc.block, len(bc.pictures)
    modes = bc.modes.copy()
    for i, j in zip(*np.nonzero(modes > n)):
        pic = pictures[int(modes[i, j]) - n - 1]
        copied = np.clip(sample(pic, int(bc.src_y[i, j]), int(bc.src_x[i, j]), b, bc.quarter), 0, 255)
        src = source[i * b:(i + 1) * b, j * b:(j + 1) * b]
        copy = block_mse(copied, src, b)[0, 0]
        if copy + margin <= block_mse(decoded[i * b:(i + 1) * b, j * b:(j + 1) * b], src, b)[0, 0]:
            modes[i, j] -= n
    return replace(bc, modes=modes)


# -- the encoder's search (torch) -----------------------------------------------------------------------------------


@dataclass
class Matches:
    """The best match of every full block over the chosen pictures: the mean squared error of what was matched
    (the encoder: the images' detail) on the [0, 1] scale, which of the chosen pictures (0-based) and the source
    position."""

    block: int
    pictures: list[int]  # dictionary picture indices, the order of `which`
    mse: np.ndarray  # (nh, nw) float64
    which: np.ndarray  # (nh, nw) int64
    src_y: np.ndarray  # in quarter pixels if `quarter`
    src_x: np.ndarray
    quarter: bool = False

    def section_for(self, use: np.ndarray, copy: bool = False) -> BlockCopy | None:
        """The section whose blocks where `use` is true add their match's detail (`copy`: are copied), None if
        there are none; it lists only the pictures it uses."""
        if not use.any():
            return None
        used = sorted(set(self.which[use].tolist()))
        slot = {p: k + 1 + (0 if copy else len(used)) for k, p in enumerate(used)}
        modes = np.zeros(use.shape, dtype=np.uint8)
        for i, j in zip(*np.nonzero(use)):
            modes[i, j] = slot[int(self.which[i, j])]
        return BlockCopy(self.block, [self.pictures[p] for p in used], modes, self.src_y.copy(), self.src_x.copy(),
                         self.quarter)


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
    predicting blocks of x (C, H, W), by the mean best-match error of its blocks on RANK_SCALE-times downscaled
    images, each less its mean colour, as detail blocks do not mind a change of brightness (cheap: it looks at
    every picture)."""
    import torch.nn.functional as F

    xs = F.avg_pool2d(x[None], RANK_SCALE)[0]
    xs = xs - xs.mean((1, 2), keepdim=True)
    ks = _blocks(xs, max(block // RANK_SCALE, 1))
    scores = []
    for thumb in thumbnails:
        if thumb is None or not len(ks):
            scores.append(float("inf"))
            continue
        v, _ = _ssd_all_positions(ks, thumb - thumb.mean((1, 2), keepdim=True))
        scores.append(float(v[:, 0].clamp_min(0).mean()))
    return sorted(range(len(scores)), key=lambda i: scores[i])


def find_matches(x: "Tensor", pictures: list["Tensor"], indices: list[int], block: int = BLOCK) -> Matches:
    """The best integer-position match of every full block of x (C, H, W) on the [0, 1] scale (pixels, or the
    detail in [-1, 1]) over `pictures` (their
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


def _phase_image(image: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """`image` (h, w, 3) sampled at every (y + fy/4, x + fx/4): copysection.sample's values for every position of
    that phase at once (int32: the sums stay below 2^21)."""
    return interpolate(np.pad(image.astype(np.int32), ((1, 2), (1, 2), (0, 0)), mode="edge"), fy, fx)


def refine_quarter(m: Matches, source: np.ndarray, pictures: list[np.ndarray]) -> Matches:
    """The matches at quarter-pixel precision: every position within QUARTER_RADIUS quarter pixels of each
    whole-pixel match whose block lies inside its picture, compared on `source` (H, W, 3) and `pictures` (the
    chosen ones, in the order of m.pictures; both on the [0, 255] scale as the search compared them)."""
    assert not m.quarter
    b = m.block
    nh, nw = m.mse.shape
    blocks = source[: nh * b, : nw * b].reshape(nh, b, nw, b, -1).transpose(0, 2, 1, 3, 4).astype(np.int64)
    best = m.mse * (255 * 255)
    qy, qx = m.src_y * 4, m.src_x * 4
    by, bx = qy.copy(), qx.copy()
    offsets = range(-QUARTER_RADIUS, QUARTER_RADIUS + 1)
    ar = np.arange(b)
    for k, pic in enumerate(pictures):
        mine = (m.which == k) & np.isfinite(m.mse)  # (no match at all: no picture was searchable)
        if not mine.any():
            continue
        h, w = pic.shape[:2]
        for fy in range(4):
            for fx in range(4):
                ph = None
                for dy in (d for d in offsets if d & 3 == fy):
                    for dx in (d for d in offsets if d & 3 == fx):
                        if dy == dx == 0:
                            continue
                        iy, ix = m.src_y + (dy >> 2), m.src_x + (dx >> 2)
                        ii, jj = np.nonzero(mine & (iy >= 0) & (ix >= 0) & (iy + b <= h) & (ix + b <= w))
                        if not len(ii):
                            continue
                        ph = _phase_image(pic, fy, fx) if ph is None else ph
                        got = ph[(iy[ii, jj][:, None] + ar)[:, :, None], (ix[ii, jj][:, None] + ar)[:, None, :]]
                        err = ((got - blocks[ii, jj]) ** 2).mean((1, 2, 3))
                        better = err < best[ii, jj]
                        ii, jj = ii[better], jj[better]
                        best[ii, jj] = err[better]
                        by[ii, jj], bx[ii, jj] = qy[ii, jj] + dy, qx[ii, jj] + dx
    return Matches(b, list(m.pictures), best / (255 * 255), m.which.copy(), by, bx, quarter=True)
