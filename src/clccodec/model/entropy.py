"""Slice-based channel-conditional entropy model with latent residual prediction (Minnen & Singh 2020).

Slice i's Gaussian parameters come from the hyper features F_h, the reference features y_a and the slices
decoded before it; LRP then refines slice i from everything decoded so far. All of it runs on the fixed-point
grid (exact.py), so encoder and decoder compute bit-identical means and scale indices.

Scales are predicted directly as a (fractional) index into CompressAI's 64-level log-spaced table; coding uses
the rounded index, training the continuous scale.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from .config import ModelConfig
from .exact import qconv, round_ste
from .tiling import map_bands

SCALE_MIN, SCALE_MAX = 0.11, 256.0
SCALE_INDEX_INIT = 16.0  # initial scale index (sigma ~ 0.8): a sane start for the rate term


def padded(string: bytes, symbols: int) -> bytes:
    """The string followed by zero bytes, for CompressAI's rANS decoder, which does not bound its reads.

    A valid string is never read past its end. A corrupt one can drive the decoder beyond it: every symbol
    consumes at most 16 bits (the CDF precision) and bypass runs stop on zero bits, so 2 bytes per symbol of
    zeros keep every read inside this buffer, and the result deterministic.
    """
    return string + bytes(2 * symbols + 64)


def scale_table(levels: int) -> Tensor:
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), levels))


class SliceEntropyModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.slices = tuple(cfg.slices)
        self.levels = cfg.scale_levels
        self.log_step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (self.levels - 1)
        base, P = cfg.feat + cfg.ref_out, cfg.param_hidden
        self.param_nets = nn.ModuleList()
        self.lrp_nets = nn.ModuleList()
        done = 0
        for s in self.slices:
            head = qconv(P, 2 * s, 1)
            with torch.no_grad():
                head.bias[s:].fill_(SCALE_INDEX_INIT)
            self.param_nets.append(nn.Sequential(qconv(base + done, P), nn.ReLU(), qconv(P, P), nn.ReLU(), head))
            self.lrp_nets.append(nn.Sequential(qconv(base + done + s, P), nn.ReLU(), qconv(P, s, 1)))
            done += s
        self.gaussian = GaussianConditional(scale_table(self.levels).tolist())

    # -- pieces shared by training, encoding and decoding --------------------------------------------------

    # `band`: rows per band (tiling.py) at coding time; bit-exact for any value, it only bounds memory.

    def _params(self, i: int, ctx: list[Tensor], band: int = 1 << 30) -> tuple[Tensor, Tensor]:
        net = self.param_nets[i]
        out = map_bands(lambda *c: net(torch.cat(c, 1)), ctx, band, halo=2)  # two 3x3 convs: radius 2
        s = self.slices[i]
        return out[:, :s], out[:, s:]

    def _lrp(self, i: int, ctx: list[Tensor], y_hat_i: Tensor, band: int = 1 << 30) -> Tensor:
        net = self.lrp_nets[i]
        r = map_bands(lambda *c: net(torch.cat(c, 1)), ctx + [y_hat_i], band, halo=1).clamp(-0.5, 0.5)
        return y_hat_i + r  # both on the grid: the sum is too

    def sigma(self, s: Tensor) -> Tensor:
        """Training scale: unclamped, so the gradient never dies (GaussianConditional bounds it below)."""
        return torch.exp(math.log(SCALE_MIN) + s * self.log_step)

    def indexes(self, s: Tensor) -> Tensor:
        return torch.round(s).clamp_(0, self.levels - 1).int()

    # -- training ---------------------------------------------------------------------------------------------

    def forward(self, y: Tensor, feat: Tensor, y_a: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled latent -> (y_hat with straight-through rounding, likelihoods under additive noise)."""
        ctx, liks = [feat, y_a], []
        for i, y_i in enumerate(y.split(self.slices, 1)):
            mu, s = self._params(i, ctx)
            _, lik = self.gaussian(y_i, self.sigma(s), means=mu)
            liks.append(lik)
            ctx.append(self._lrp(i, ctx, round_ste(y_i - mu) + mu))
        return torch.cat(ctx[2:], 1), torch.cat(liks, 1)

    # -- coding (float64, exact) ------------------------------------------------------------------------------

    def compress(self, y: Tensor, feat: Tensor, y_a: Tensor, band: int = 1 << 30) -> tuple[list[bytes], Tensor]:
        ctx, strings = [feat, y_a], []
        for i, y_i in enumerate(y.split(self.slices, 1)):
            mu, s = self._params(i, ctx, band)
            idx = self.indexes(s)
            strings.append(self.gaussian.compress(y_i, idx, means=mu)[0])
            y_hat_i = torch.round(y_i - mu) + mu
            ctx.append(self._lrp(i, ctx, y_hat_i, band))
        return strings, torch.cat(ctx[2:], 1)

    def decompress(self, strings: list[bytes], feat: Tensor, y_a: Tensor, band: int = 1 << 30) -> Tensor:
        ctx = [feat, y_a]
        for i in range(len(self.slices)):
            mu, s = self._params(i, ctx, band)
            idx = self.indexes(s)
            y_hat_i = self.gaussian.decompress([padded(strings[i], idx.numel())], idx, dtype=mu.dtype, means=mu)
            ctx.append(self._lrp(i, ctx, y_hat_i, band))
        return torch.cat(ctx[2:], 1)
