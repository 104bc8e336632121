"""The decoder's pixel path (gains, CLS fusion, g_s): exact on fixed-point grids, or fast in float32.

The probability path (exact.py) guarantees that every device decodes the same symbols. ExactSynthesis makes the
*pixels* identical too, so a file decodes to the same image on a GPU, on a CPU, with any thread count or band
plan (`decode(..., exact=True)`, `clc decode --exact`); FastSynthesis, the default, runs the same trained network
in float32 through the vendor kernels, within a last bit or two of it. In ExactSynthesis the trained float
network is evaluated in float64 with its parameters and activations rounded to dyadic grids fine enough to
change nothing visible:

* activations on 2^-14 (|a| <= 256), weights on 2^-18 (|w| <= 1), biases on 2^-16 (|b| <= 64): every product
  and every partial sum of a convolution is exact in float64 (at most 52 significant bits, see the bounds
  below), so the summation order of a kernel cannot matter;
* inverse GDN: x^2 is rounded to 2^-12, gamma to 2^-16, so their 1x1 convolution is exact, then sqrt and the product
  with x (and with the quality's rate scale, model config rate_scales) are single IEEE-754 operations, correctly
  rounded on every conforming device, and re-gridded;
* the CLS gate sigmoid, the quality gains and the rate scales (exp) are not left to a device's libm: they come from
  tables computed with Python's `decimal` (correctly rounded) and rounded to 2^-16; the gate logit (on 2^-12) is
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

from .quality import interpolate_log_table, level_weights
from . import subpixel
from .exact import to_grid

PIXEL_ACT_FRAC, PIXEL_ACT_MAX = 14, 256.0
PIXEL_W_FRAC, PIXEL_W_MAX = 18, 1.0
PIXEL_B_FRAC, PIXEL_B_MAX = 16, 64.0
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


def exact_table_at(log_table: Tensor, quality: float) -> Tensor:
    """exp of the log-linear interpolation of a per-level table (levels, channels) at `quality`, on 2^-16.

    The same formula as quality.interpolate_log_table, evaluated with `decimal` (the parameters are exact binary
    floats), so no device's exp() is involved. Returns (channels,) float64.
    """
    lo, t = level_weights(Decimal(quality), log_table.shape[0])
    table = log_table.detach().double().cpu().tolist()
    with localcontext() as ctx:
        ctx.prec = 40
        vals = [_grid_decimal((Decimal(a) * (1 - t) + Decimal(b) * t).exp(), TABLE_FRAC)
                for a, b in zip(table[lo], table[lo + 1])]
    return torch.tensor(vals, dtype=torch.float64)


def exact_inverse_gain(log_inv_gain: Tensor, quality: float) -> Tensor:
    """The inverse gains (CLCModel.gains) at `quality`, exactly: (1, latent channels, 1, 1) float64 on 2^-16."""
    return exact_table_at(log_inv_gain, quality).view(1, -1, 1, 1)


def split_scales(scale: Tensor, gdns: list[int]) -> list[Tensor]:
    """One quality's rate scales (sum of the GDNs' channels,) cut into one vector per GDN (channel counts)."""
    if scale.numel() != sum(gdns):
        raise ValueError(f"{scale.numel()} rate scales for {sum(gdns)} GDN channels")
    return list(scale.split(gdns))


def folded_gdns(layers: list[tuple], kind: str, scale: Tensor | None) -> list[tuple[Tensor, Tensor]]:
    """The (gamma transposed, beta) of each ("gdn" or "igdn") layer of a fast network, with one quality's output
    scales s (rate_scales; None: none) folded in, at no cost per position: s x / sqrt(beta + gamma x^2) =
    x / sqrt((beta + gamma x^2) / s^2), and s x sqrt(beta + gamma x^2) = x sqrt(s^2 beta + s^2 gamma x^2)."""
    gdns = [(layer[1], layer[2]) for layer in layers if layer[0] == kind]
    if scale is None:
        return gdns
    squares = [s.float() ** 2 for s in split_scales(scale, [b.numel() for _, b in gdns])]
    if kind == "gdn":
        return [(g / s2, b / s2) for (g, b), s2 in zip(gdns, squares)]
    return [(g * s2, b * s2) for (g, b), s2 in zip(gdns, squares)]


def act(x: Tensor) -> Tensor:
    return to_grid(x, PIXEL_ACT_FRAC, PIXEL_ACT_MAX)


class ExactSynthesis:
    """Gridded float64 copies of the fusion and g_s parameters on one device (built once per loaded model)."""

    def __init__(self, fusion: nn.Module, g_s: nn.Sequential, log_inv_gain: Tensor, log_scale: Tensor | None,
                 device: torch.device) -> None:
        self.log_inv_gain, self.log_scale, self.device = log_inv_gain, log_scale, device

        def w(t: Tensor) -> Tensor:
            return to_grid(t.detach().to(device, torch.float64), PIXEL_W_FRAC, PIXEL_W_MAX)

        def b(t: Tensor) -> Tensor:
            return to_grid(t.detach().to(device, torch.float64), PIXEL_B_FRAC, PIXEL_B_MAX)

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
                    self.layers.append(("igdn", to_grid(gamma.reshape(C, C, 1, 1).to(device), GAMMA_FRAC, PIXEL_W_MAX),
                                        b(beta)))
                else:
                    raise TypeError(f"exact synthesis does not know {type(layer).__name__}")
        self.sigmoid = sigmoid_table().to(device)

    def at_quality(self, quality: float) -> tuple[Tensor, list[Tensor] | None]:
        """(inverse gains, the inverse GDNs' output scales or None): what __call__ needs for one quality, exact
        (on 2^-16, from `decimal`)."""
        inv_gain = exact_inverse_gain(self.log_inv_gain, quality).to(self.device)
        if self.log_scale is None:
            return inv_gain, None
        gdns = [layer[1].shape[0] for layer in self.layers if layer[0] == "igdn"]
        scales = split_scales(exact_table_at(self.log_scale, quality).to(self.device), gdns)
        return inv_gain, [s.view(1, -1, 1, 1) for s in scales]

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

    def synthesize(self, y: Tensor, scales: list[Tensor] | None = None) -> Tensor:
        """g_s; `scales`: each inverse GDN's output scale (rate_scales), one more correctly rounded product."""
        k = 0
        for layer in self.layers:
            if layer[0] == "deconv":
                _, weight, bias, stride, padding, output_padding = layer
                y = act(F.conv_transpose2d(y, weight, bias, stride, padding, output_padding))
            else:
                _, gamma, beta = layer
                norm = F.conv2d(to_grid(y * y, SQUARE_FRAC, PIXEL_ACT_MAX**2), gamma, beta)
                y = y * torch.sqrt(norm)
                if scales is not None:
                    y = y * scales[k]
                    k += 1
                y = act(y)
        return y

    def __call__(self, y_hat_s: Tensor, y_a: Tensor, params: tuple[Tensor, list[Tensor] | None]) -> Tensor:
        """y_hat_s (slices, 2^-8 grid) and y_a (2^-8 grid), float64, with at_quality's params -> x_hat in [0, 1]
        on 2^-14."""
        inv_gain, scales = params
        y_hat = act(y_hat_s * inv_gain)
        return self.synthesize(self.fuse(y_hat, y_a), scales).clamp_(0, 1)



def deconv_as_subpixel(deconv: nn.ConvTranspose2d) -> tuple[Tensor, Tensor]:
    """The transposed convolution's sub-pixel form (subpixel.py), as tensors on its device."""
    w, b = deconv.weight.detach(), deconv.bias.detach()
    k, kb = subpixel.subpixel_kernel(w.cpu().numpy(), b.cpu().numpy())
    return torch.from_numpy(k).to(w.device), torch.from_numpy(kb).to(b.device)


GDN_ROWS = 2048  # positions per chunk of a channels_last GDN


def channels_last_gdn(x: Tensor, gamma_t: Tensor, beta: Tensor, inverse: bool) -> Tensor:
    """GDN (x / sqrt(beta + gamma x^2)) or its inverse (x * sqrt(...)) at every position of x (1, C, H, W), with
    the reparametrised gamma (transposed) and beta computed once: the 1x1 convolution as matrix products over
    the channels_last layout, in cache-sized chunks."""
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view: channels are the fastest axis
    out = torch.empty_like(rows)
    sq = rows.new_empty((min(GDN_ROWS, len(rows)), c))
    for s in range(0, len(rows), GDN_ROWS):
        r, o = rows[s : s + GDN_ROWS], out[s : s + GDN_ROWS]
        torch.addmm(beta, torch.mul(r, r, out=sq[: len(r)]), gamma_t, out=o)
        (o.sqrt_() if inverse else o.rsqrt_()).mul_(r)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def gdn_parameters(m: GDN, device: torch.device) -> tuple[Tensor, Tensor]:
    """A GDN's reparametrised (gamma transposed, beta) in float32, for channels_last_gdn."""
    gamma = m.gamma_reparam(m.gamma.detach()).to(device, torch.float32)
    return gamma.t().contiguous(), m.beta_reparam(m.beta.detach()).to(device, torch.float32)


class FastSynthesis:
    """The trained float network itself (inverse gains, CLS fusion, g_s) in float32, channels_last.

    What a decoder runs by default: oneDNN kernels on a CPU, cuDNN on a GPU (TF32 off), several times faster than
    ExactSynthesis. It decodes the same symbols (the probability path is exact either way); its pixels are
    within a last bit or two of the exact ones and may differ between devices and thread counts. The inverse
    GDNs use their reparametrised beta and gamma computed once and run their 1x1 convolution as matrix products
    over the channels_last layout, in cache-sized chunks; the last (3-channel) transposed convolution runs as a
    sub-pixel convolution.
    """

    def __init__(self, fusion: nn.Module, g_s: nn.Sequential, log_inv_gain: Tensor, log_scale: Tensor | None,
                 device: torch.device) -> None:
        def cl(t: Tensor) -> Tensor:
            return t.detach().to(device, torch.float32).contiguous(memory_format=torch.channels_last)

        def f32(t: Tensor) -> Tensor:
            return t.detach().to(device, torch.float32)

        with torch.no_grad():
            self.gate = (cl(fusion.gate.weight), f32(fusion.gate.bias), fusion.gate.padding)
            self.proj = (cl(fusion.proj.weight), f32(fusion.proj.bias))
            self.layers: list[tuple] = []
            for m in g_s:
                if isinstance(m, nn.ConvTranspose2d) and m.out_channels < 16:
                    k, b = deconv_as_subpixel(m)
                    self.layers.append(("subpixel", cl(k), f32(b)))
                elif isinstance(m, nn.ConvTranspose2d):
                    self.layers.append(("deconv", cl(m.weight), f32(m.bias), m.stride, m.padding, m.output_padding))
                elif isinstance(m, GDN) and m.inverse:
                    self.layers.append(("igdn", *gdn_parameters(m, device)))
                else:
                    raise TypeError(f"fast synthesis does not know {type(m).__name__}")
        self.log_inv_gain = log_inv_gain.detach().to(device, torch.float32)
        self.log_scale = None if log_scale is None else log_scale.detach().to(device, torch.float32)

    def at_quality(self, quality: float) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """(inverse gains, each inverse GDN's (gamma transposed, beta) with the rate scales folded in) at one
        quality: what __call__ needs."""
        q = torch.tensor([quality], device=self.log_inv_gain.device)
        inv_gain = interpolate_log_table(self.log_inv_gain, q)[:, :, None, None]
        scale = None if self.log_scale is None else interpolate_log_table(self.log_scale, q)[0]
        return inv_gain, folded_gdns(self.layers, "igdn", scale)

    def __call__(self, y_hat_s: Tensor, y_a: Tensor, params: tuple[Tensor, list[tuple[Tensor, Tensor]]]) -> Tensor:
        """y_hat_s and y_a (any float dtype, on the 2^-8 grid: exact in float32), with at_quality's params ->
        x_hat in [0, 1], float32."""
        inv_gain, gdns = params
        y = (y_hat_s.float() * inv_gain).contiguous(memory_format=torch.channels_last)
        a = y_a.float().contiguous(memory_format=torch.channels_last)
        gw, gb, pad = self.gate
        alpha = torch.sigmoid(F.conv2d(torch.cat([y, a], 1), gw, gb, padding=pad))
        x = (y + alpha * F.conv2d(a, *self.proj)).contiguous(memory_format=torch.channels_last)
        k = 0
        for layer in self.layers:
            if layer[0] == "deconv":
                x = F.conv_transpose2d(x, *layer[1:])
            elif layer[0] == "subpixel":
                x = F.pixel_shuffle(F.conv2d(x, layer[1], layer[2], padding=1), 2)
            else:
                x = channels_last_gdn(x, *gdns[k], inverse=True)
                k += 1
        return x.clamp_(0, 1)
