"""Progressive decoding: an image from a prefix of its slices.

A .clc file codes the latent in S slices, each conditioned on the ones before (model/entropy.py). A version-2
file checks every section separately, so a file cut short still gives its complete prefix (container.unpack
with partial=True), and `clc encode --slices K` writes a deliberate K-slice preview. The slices that are not
there are filled from what the decoder already has, through the very slice loop and latent residual prediction
(LRP) of a full decode:

* ``detail="mean"`` (default): a missing slice's symbols are its predicted means mu (residual 0). mu comes from
  the hyper features, the reference features y_a and the slices before it, all on the exact fixed-point path,
  so the fill is bit-identical on every machine. This is the minimum-MSE choice given the decoder's knowledge.
* ``detail="sample"`` (a perceptual option, after SIC's synonymous reconstructions): each missing symbol is
  *drawn* from the very distribution the encoder would have coded it with, by running the slice's rANS decoder
  on a pseudo-random byte stream (SHAKE-256 of the seed and the slice number): decoding uniform random bits with
  a symbol's integer CDF table yields a sample of that discretised Gaussian, with integer arithmetic only, so a
  seed gives the same image everywhere. Texture instead of blur, at a cost in PSNR (benchmarks/prefix_rd.py).

Either way the result goes through the same synthesis as a full decode (fast, or exact with `exact`). With every slice present the
fill is never used and the pixels are those of CLCModel.decompress.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from ..model.rans import EntropyStrings, check_string, padded
from ..model.network import CLCModel


def detail_stream(seed: int, slice_index: int, nbytes: int) -> bytes:
    """The pseudo-random bytes slice `slice_index` (0-based) is sampled from: SHAKE-256, fully specified."""
    return hashlib.shake_256(b"clc-detail/1|%d|%d" % (seed, slice_index)).digest(nbytes)


def fill_symbols(model: CLCModel, strings: list[bytes], detail: str = "mean", seed: int = 0):
    """The `symbols(i, mu, scale_index)` callback of SliceEntropyModel._code: decode the strings there are,
    fill the rest (see the module doc)."""
    gaussian, bits = model.entropy.gaussian, model.entropy.string_bits()

    def symbols(i: int, mu: Tensor, idx: Tensor) -> Tensor:
        if i < len(strings):
            check_string(strings[i], bits, idx.cpu().numpy())
            return gaussian.decompress([padded(strings[i], idx.numel())], idx, dtype=mu.dtype, means=mu)
        if detail == "mean":
            return mu.clone()
        # random bytes (2 per symbol: more than a symbol ever takes unless it escapes to the tail), then the
        # zero padding that bounds any read (entropy.padded)
        noise = detail_stream(seed, i, 2 * idx.numel() + 8)
        return gaussian.decompress([padded(noise, idx.numel())], idx, dtype=mu.dtype, means=mu)

    return symbols


@torch.no_grad()
def decompress_prefix(model: CLCModel, streams: EntropyStrings, size: tuple[int, int], quality: float,
                      ref_codes: Tensor | None = None, device: torch.device | str = "cpu", detail: str = "mean",
                      seed: int = 0, exact: bool = False) -> Tensor:
    """CLCModel.decompress for strings that may hold only the first K slices: the rest are filled (`exact`:
    the bit-exact synthesis, else the fast one, as in CLCModel.decompress)."""
    return model.decompress(streams, size, quality, ref_codes, device, exact,
                            symbols=fill_symbols(model, streams.slices, detail, seed))
