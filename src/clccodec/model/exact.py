"""Fixed-point layers for the probability path.

Everything that decides an rANS symbol's distribution (hyper-synthesis, reference attention, alignment, slice
entropy parameters, latent residual prediction) is built from these layers. They are trained in float32 with
fake quantisation (straight-through rounding) and run at coding time in float64 on the very same grids:

* weights live on a 2^-W_FRAC grid, |w| <= W_MAX; biases on 2^-B_FRAC (a sub-grid of the product grid);
* activations are rounded to a 2^-A_FRAC grid and clamped to |a| <= A_MAX after every layer;
* non-linearities are ReLU/clamp, and softmax weights come from an integer table of 2^(-i/8).

Every product is then a dyadic rational with at most ~46 significant bits and every sum of them is exact in
float64, whatever the summation order, thread count, BLAS or device. Division (attention normalisation) is
IEEE correctly rounded and immediately re-gridded. So the entropy parameters are bit-identical on any machine,
by construction rather than by luck (see docs/format.md, "Determinism").
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .grids import (
    A_FRAC, A_MAX, B_FRAC, B_MAX, EXP2_LUT, LUT_SIZE, LUT_STEPS_PER_OCTAVE, W_FRAC, W_MAX,
)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        return torch.round(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # noqa: D102
        return g


def round_ste(x: Tensor) -> Tensor:
    """Round to the nearest integer (half to even) with an identity gradient."""
    return _RoundSTE.apply(x)


def to_grid(x: Tensor, frac: int, bound: float) -> Tensor:
    """Clamp to [-bound, bound] and round to the 2^-frac grid (exact in float32/64 for our ranges)."""
    scale = float(2**frac)
    q = int(bound * scale)
    if torch.is_grad_enabled() and x.dtype == torch.float32 and q <= 1 << 24:
        # training: one fused op (values identical to the formula below, same straight-through gradient,
        # masked outside the bound); ~40 % less time than clamp-scale-round-divide on the training step
        return torch.fake_quantize_per_tensor_affine(x, 1.0 / scale, 0, -q, q)
    if not torch.is_grad_enabled() and x.device.type == "cpu" and q <= 1 << 24:
        # coding on CPU: one fused pass, bit-identical to the expression below (round half to even, exact
        # scaling; tests/test_exact.py). fake_quantize dequantizes in float32, so only grids of <= 2^24 steps;
        # other devices keep the plain formula (not verified there).
        return torch.fake_quantize_per_tensor_affine(x, 1.0 / scale, 0, -q, q)
    return round_ste(x.clamp(-bound, bound) * scale) / scale


def q_act(x: Tensor) -> Tensor:
    return to_grid(x, A_FRAC, A_MAX)


def q_weight(w: Tensor) -> Tensor:
    return to_grid(w, W_FRAC, W_MAX)


def q_bias(b: Tensor) -> Tensor:
    return to_grid(b, B_FRAC, B_MAX)


class QConv2d(nn.Conv2d):
    """Conv2d on the fixed-point grids; output is re-gridded (apply ReLU afterwards: it keeps the grid)."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if torch.is_grad_enabled():
            w = q_weight(self.weight.to(x.dtype))
            b = q_bias(self.bias.to(x.dtype)) if self.bias is not None else None
            return q_act(F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups))
        # coding: the same values, without re-gridding the weights at every call
        w, b = self._gridded(x.dtype, x.device)
        return q_act(F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups))

    def _gridded(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """Weights and bias on their grids in `dtype`, cached until the parameters change."""
        key = (dtype, device, self.weight._version, None if self.bias is None else self.bias._version)
        cache = self.__dict__.get("_grid_cache")
        if cache is None or cache[0] != key:
            w = q_weight(self.weight.detach().to(device, dtype))
            b = q_bias(self.bias.detach().to(device, dtype)) if self.bias is not None else None
            cache = (key, w, b)
            self.__dict__["_grid_cache"] = cache  # not a buffer: never saved, never moved by .to()
        return cache[1], cache[2]


def qconv(cin: int, cout: int, k: int = 3) -> QConv2d:
    return QConv2d(cin, cout, k, padding=k // 2)


class _Exp2Table(torch.autograd.Function):
    """Forward: the integer table 2^(-i/8) at i = round(8 * (max - logit)). Backward: d/dl 2^(l - max)."""

    @staticmethod
    def forward(ctx, logits: Tensor, dim: int, lut: Tensor) -> Tensor:  # noqa: D102
        peak = logits.amax(dim=dim, keepdim=True)
        idx = torch.round((peak - logits) * LUT_STEPS_PER_OCTAVE).clamp_(0, LUT_SIZE - 1).long()
        w = lut.to(logits.dtype)[idx]
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: D102
        (w,) = ctx.saved_tensors
        # the table approximates 65536 * 2^(l - max); the max's own gradient cancels in the normalised softmax
        return g * w * 0.6931471805599453, None, None


def exp2_weights(logits: Tensor, dim: int, lut: Tensor) -> Tensor:
    """Unnormalised softmax weights (base 2) as exact integers, with a smooth gradient for training."""
    return _Exp2Table.apply(logits, dim, lut)


def make_lut() -> Tensor:
    return torch.tensor(EXP2_LUT, dtype=torch.float64)


@contextlib.contextmanager
def exact_mode(device: torch.device):
    """Keep float64 convolutions on plain im2col+GEMM (exact) instead of cuDNN algorithms like FFT/Winograd."""
    if device.type == "cuda":
        prev = torch.backends.cudnn.enabled
        torch.backends.cudnn.enabled = False
        try:
            yield
        finally:
            torch.backends.cudnn.enabled = prev
    else:
        yield


def quantize_exact_params(module: nn.Module) -> None:
    """Snap every QConv2d's parameters onto their grids in place (used before export)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, QConv2d):
                m.weight.copy_(q_weight(m.weight))
                if m.bias is not None:
                    m.bias.copy_(q_bias(m.bias))
