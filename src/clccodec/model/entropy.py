"""Slice-based channel-conditional entropy model with latent residual prediction (Minnen & Singh 2020).

Slice i's Gaussian parameters come from the hyper features F_h, the reference features y_a and the slices
decoded before it; LRP then refines slice i from everything decoded so far. With `query_slices` = k > 0 the
reference features arrive late: the first k slices see y_a without references (the CLM's null output), then
`late(decoded slices)` runs the CLM with its query on them and its y_a conditions the remaining slices and
the synthesis. All of it runs on the fixed-point
grid (exact.py), so encoder and decoder compute bit-identical means and scale indices.

Scales are predicted directly as a (fractional) index into CompressAI's 64-level log-spaced table; coding uses
the rounded index, training the continuous scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from . import layout
from .config import ModelConfig
from .exact import round_ste
from .rans import check_string, min_bits, padded
from .bands import map_bands

# decoded slices -> the reference features y_a for the slices after them (query_slices)
Late = Callable[[Tensor], Tensor]

SCALE_MIN, SCALE_MAX = 0.11, 256.0
SCALE_INDEX_INIT = 16.0  # initial scale index (sigma ~ 0.8): a sane start for the rate term


def scale_table(levels: int) -> Tensor:
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), levels))


def rounded(residual: Tensor) -> tuple[Tensor, Tensor]:
    """The relaxation that relaxes nothing (a `relax` for SliceEntropyModel.forward): the rounded residual,
    straight-through, for the likelihood (the rate the coder spends) and for the context and synthesis alike."""
    hard = round_ste(residual)
    return hard, hard


class SliceEntropyModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.slices = tuple(cfg.slices)
        self.query_slices = cfg.query_slices
        self.levels = cfg.scale_levels
        self.log_step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (self.levels - 1)
        from .transforms import torch_layer

        base = cfg.feat + cfg.ref_out
        self.param_nets = nn.ModuleList()
        self.lrp_nets = nn.ModuleList()
        done = 0
        for s in self.slices:
            params = layout.slice_parameters(cfg, base + done, s)
            head = torch_layer(params[-1])  # made first: the order the random initialisation has always drawn in
            with torch.no_grad():
                head.bias[s:].fill_(SCALE_INDEX_INIT)
            self.param_nets.append(nn.Sequential(*map(torch_layer, params[:-1]), head))
            self.lrp_nets.append(nn.Sequential(*map(torch_layer, layout.slice_residual(cfg, base + done + s, s))))
            done += s
        # the bands' halos: the receptive radius of the parameter and residual networks (the same for every slice)
        self.halos = (layout.radius(params), layout.radius(layout.slice_residual(cfg, 1, 1)))
        self.gaussian = GaussianConditional(scale_table(self.levels).tolist())

    def sigma(self, s: Tensor) -> Tensor:
        """Training scale: unclamped, so the gradient never dies (GaussianConditional bounds it below)."""
        return torch.exp(math.log(SCALE_MIN) + s * self.log_step)

    def indexes(self, s: Tensor) -> Tensor:
        return torch.round(s).clamp_(0, self.levels - 1).int()

    # -- training ---------------------------------------------------------------------------------------------

    def forward(self, y: Tensor, feat: Tensor, y_a: Tensor, late: Late | None = None,
                relax: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Scaled latent -> (y_hat with straight-through rounding, likelihoods under additive noise, the y_a
        the last slices and the synthesis see).

        `relax(residual) -> (residual the likelihood sees, residual the context and synthesis see)` replaces
        that training relaxation (latent refinement, refine.py)."""
        ctx, liks = [feat, y_a], []
        for i, y_i in enumerate(y.split(self.slices, 1)):
            if late is not None and i == self.query_slices:
                ctx[1] = late(torch.cat(ctx[2:], 1))
            out = self.param_nets[i](torch.cat(ctx, 1))
            mu, s = out[:, : y_i.shape[1]], out[:, y_i.shape[1] :]
            if relax is None:
                _, lik = self.gaussian(y_i, self.sigma(s), means=mu)
                y_hat_i = round_ste(y_i - mu) + mu
            else:
                r_lik, r_ctx = relax(y_i - mu)
                lik = self.gaussian.likelihood_lower_bound(self.gaussian._likelihood(r_lik + mu, self.sigma(s),
                                                                                     means=mu))
                y_hat_i = r_ctx + mu
            liks.append(lik)
            ctx.append(y_hat_i + self.lrp_nets[i](torch.cat(ctx + [y_hat_i], 1)).clamp(-0.5, 0.5))
        return torch.cat(ctx[2:], 1), torch.cat(liks, 1), ctx[1]

    # -- coding (float64, exact) ------------------------------------------------------------------------------

    def _code(self, feat: Tensor, y_a: Tensor, late: Late | None, band: int,
              symbols: Callable[[int, Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """The slice loop of both coding directions; symbols(i, mu, scale indexes) codes slice i -> y_hat_i.
        Returns y_hat and the final y_a.

        The context [F_h, y_a, decoded slices] lives in one preallocated tensor (no concatenation per slice);
        the networks run band by band (`band` rows: bit-exact for any value, it only bounds memory). Same
        arithmetic as forward(), so training and coding agree.
        """
        base = feat.shape[1] + y_a.shape[1]
        ctx = feat.new_empty((feat.shape[0], base + sum(self.slices), *feat.shape[2:]))
        ctx[:, : feat.shape[1]] = feat
        ctx[:, feat.shape[1] : base] = y_a
        n = base
        for i, s in enumerate(self.slices):
            if late is not None and i == self.query_slices:
                ctx[:, feat.shape[1] : base] = late(ctx[:, base:n])
            out = map_bands(self.param_nets[i], ctx[:, :n], band, halo=self.halos[0])
            ctx[:, n : n + s] = symbols(i, out[:, :s], self.indexes(out[:, s:]))
            r = map_bands(self.lrp_nets[i], ctx[:, : n + s], band, halo=self.halos[1])
            ctx[:, n : n + s] += r.clamp_(-0.5, 0.5)  # both on the grid: the sum is too
            n += s
        return ctx[:, base:], ctx[:, feat.shape[1] : base]

    def compress(self, y: Tensor, feat: Tensor, y_a: Tensor, late: Late | None = None,
                 band: int = 1 << 30) -> tuple[list[bytes], Tensor, Tensor]:
        ys, strings = y.split(self.slices, 1), []

        def code(i: int, mu: Tensor, idx: Tensor) -> Tensor:
            strings.append(self.gaussian.compress(ys[i], idx, means=mu)[0])
            return torch.round(ys[i] - mu) + mu

        y_hat, y_a = self._code(feat, y_a, late, band, code)
        return strings, y_hat, y_a

    def string_bits(self):
        """The fewest bits a symbol of each of the Gaussian's tables can cost (rans.min_bits)."""
        g = self.gaussian
        return min_bits(g._quantized_cdf.cpu().numpy(), g._cdf_length.cpu().numpy())

    def decompress(self, strings: list[bytes], feat: Tensor, y_a: Tensor, late: Late | None = None,
                   band: int = 1 << 30) -> tuple[Tensor, Tensor]:
        bits = self.string_bits()

        def decode(i: int, mu: Tensor, idx: Tensor) -> Tensor:
            check_string(strings[i], bits, idx.cpu().numpy())  # before decoding: a short string is corrupt
            return self.gaussian.decompress([padded(strings[i], idx.numel())], idx, dtype=mu.dtype, means=mu)

        return self._code(feat, y_a, late, band, decode)
