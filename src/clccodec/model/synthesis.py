"""Exact synthesis: the decoder's pixel path (gains, CLS fusion, g_s) on fixed-point grids.

The probability path (exact.py) guarantees that every device decodes the same symbols. This module makes the
*pixels* identical too, so a file decodes to the same image on a GPU, on a CPU, with any thread count or band
plan. The trained float network is evaluated in float64 with its parameters and activations rounded to dyadic
grids fine enough to change nothing visible:

* activations on 2^-14 (|a| <= 256), weights on 2^-18 (|w| <= 1), biases on 2^-16 (|b| <= 64): every product
  and every partial sum of a convolution is exact in float64 (at most 52 significant bits, see the bounds
  below), so the summation order of a kernel cannot matter;
* inverse GDN: x^2 is rounded to 2^-12, gamma to 2^-16, so their 1x1 convolution is exact, then sqrt and the product
  with x are single IEEE-754 operations, correctly rounded on every conforming device, and re-gridded;
* the CLS gate sigmoid and the quality gains (exp) are not left to a device's libm: they come from tables
  computed with Python's `decimal` (correctly rounded) and rounded to 2^-16; the gate logit (on 2^-12) is
  interpolated linearly between the sigmoid table's 2^-8 steps.

Bounds (bits of the largest sum of absolute values, which bounds every partial sum): deconvolutions
<= 192 * 9 terms of 2^8 * 2^0 on a 2^-32 grid -> 51; CLS gate <= 192 * 9 terms of 2^8 (y_hat) on 2^-32 plus
64 * 9 terms of 2^10 (y_a, on 2^-8) -> 2^20 on 2^-32 -> 52; inverse GDN <= 128 terms of 2^16 on 2^-28 -> 51.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

from ..quality import level_weights
from .exact import to_grid

ACT_FRAC, ACT_MAX = 14, 256.0
W_FRAC, W_MAX = 18, 1.0
B_FRAC, B_MAX = 16, 64.0
SQUARE_FRAC, GAMMA_FRAC = 12, 16  # x^2 and gamma inside inverse GDN
GATE_FRAC, GATE_MAX = 8, 16.0  # sigmoid table steps (logits on 2^-12 interpolate between them)
TABLE_FRAC = 16  # sigmoid and gain values


def _grid_decimal(v: Decimal, frac: int) -> float:
    return float((v * (1 << frac)).to_integral_value(ROUND_HALF_EVEN)) / (1 << frac)


def sigmoid_table() -> Tensor:
    """sigmoid(k / 2^8) for k = -16*2^8 .. 16*2^8, correctly rounded to 2^-16, identical on every machine."""
    n = int(GATE_MAX * (1 << GATE_FRAC))
    with localcontext() as ctx:
        ctx.prec = 40
        vals = [_grid_decimal(1 / (1 + (Decimal(-k) / (1 << GATE_FRAC)).exp()), TABLE_FRAC) for k in range(-n, n + 1)]
    return torch.tensor(vals, dtype=torch.float64)


def exact_inverse_gain(log_inv_gain: Tensor, quality: float) -> Tensor:
    """exp of the log-linear interpolation of the inverse-gain table at `quality`, per channel, on 2^-16.

    The same formula as CLCModel.gains (quality.py), evaluated with `decimal` (the parameters are exact binary
    floats), so no device's exp() is involved. Returns (1, latent channels, 1, 1) float64.
    """
    lo, t = level_weights(Decimal(quality), log_inv_gain.shape[0])
    table = log_inv_gain.detach().double().cpu().tolist()
    with localcontext() as ctx:
        ctx.prec = 40
        vals = [_grid_decimal((Decimal(a) * (1 - t) + Decimal(b) * t).exp(), TABLE_FRAC)
                for a, b in zip(table[lo], table[lo + 1])]
    return torch.tensor(vals, dtype=torch.float64).view(1, -1, 1, 1)


def act(x: Tensor) -> Tensor:
    return to_grid(x, ACT_FRAC, ACT_MAX)


class ExactSynthesis:
    """Gridded float64 copies of the fusion and g_s parameters on one device (built once per loaded model)."""

    def __init__(self, fusion: nn.Module, g_s: nn.Sequential, device: torch.device) -> None:
        def w(t: Tensor) -> Tensor:
            return to_grid(t.detach().to(device, torch.float64), W_FRAC, W_MAX)

        def b(t: Tensor) -> Tensor:
            return to_grid(t.detach().to(device, torch.float64), B_FRAC, B_MAX)

        with torch.no_grad():
            self.gate = (w(fusion.gate.weight), b(fusion.gate.bias), fusion.gate.padding)
            self.proj = (w(fusion.proj.weight), b(fusion.proj.bias))
            self.layers: list[tuple] = []
            for layer in g_s:
                if isinstance(layer, nn.ConvTranspose2d):
                    self.layers.append(("deconv", w(layer.weight), b(layer.bias), layer.stride, layer.padding,
                                        layer.output_padding))
                elif isinstance(layer, GDN) and layer.inverse:
                    # the reparametrisations are max, square and subtract: correctly rounded anywhere
                    beta = layer.beta_reparam(layer.beta.detach().double().cpu())
                    gamma = layer.gamma_reparam(layer.gamma.detach().double().cpu())
                    C = gamma.shape[0]
                    self.layers.append(("igdn", to_grid(gamma.reshape(C, C, 1, 1).to(device), GAMMA_FRAC, W_MAX),
                                        b(beta)))
                else:
                    raise TypeError(f"exact synthesis does not know {type(layer).__name__}")
        self.sigmoid = sigmoid_table().to(device)

    def fuse(self, y_hat: Tensor, y_a: Tensor) -> Tensor:
        """CLS: y_hat + alpha * P(y_a), alpha = sigmoid(F_w([y_hat, y_a])) from the table."""
        gw, gb, pad = self.gate
        g = to_grid(F.conv2d(torch.cat([y_hat, y_a], 1), gw, gb, padding=pad), GATE_FRAC + 4, GATE_MAX)
        # linear interpolation between table entries: every operation exact (alpha lands on 2^-20)
        pos = g * (1 << GATE_FRAC) + int(GATE_MAX * (1 << GATE_FRAC))
        k = pos.floor().clamp_(max=len(self.sigmoid) - 2)
        lo = self.sigmoid[k.long()]
        alpha = lo + (pos - k) * (self.sigmoid[k.long() + 1] - lo)
        p = act(F.conv2d(y_a, *self.proj))
        return act(y_hat + alpha * p)

    def synthesize(self, y: Tensor) -> Tensor:
        for layer in self.layers:
            if layer[0] == "deconv":
                _, weight, bias, stride, padding, output_padding = layer
                y = act(F.conv_transpose2d(y, weight, bias, stride, padding, output_padding))
            else:
                _, gamma, beta = layer
                norm = F.conv2d(to_grid(y * y, SQUARE_FRAC, ACT_MAX**2), gamma, beta)
                y = act(y * torch.sqrt(norm))
        return y

    def __call__(self, y_hat_s: Tensor, y_a: Tensor, inv_gain: Tensor) -> Tensor:
        """y_hat_s (slices, 2^-8 grid) and y_a (2^-8 grid), float64 -> x_hat in [0, 1] on 2^-14."""
        y_hat = act(y_hat_s * inv_gain)
        return self.synthesize(self.fuse(y_hat, y_a)).clamp_(0, 1)

