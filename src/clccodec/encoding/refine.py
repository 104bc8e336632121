"""Latent refinement (effort >= 3, effort.py): optimise one image's latents against the decoder that reads them.

Starting from the analysis's scaled latent y_s and hyper-latent z, Adam minimises the training loss
lambda * 255^2 * MSE + bpp of this image with the model frozen, as in the per-image optimisation of Yang, Bamler
& Mandt (2020) and CLRIC. Rounding is relaxed as in training by default ("noise": additive uniform noise for the
likelihoods, straight-through rounding for the context and the synthesis); stochastic Gumbel annealing ("sga")
and plain straight-through rounding ("ste") are there for the tuning benchmark (benchmarks/effort_tune.py):
with the few dozen iterations a CPU can afford, "noise" saved the most (docs/effort.md).

Memory stays bounded on large images: refinement runs on tiles of the image (with a halo of context that is
optimised but not kept), one at a time. On CPUs with native bfloat16 (model/device.native_bf16) the forward pass
runs under bf16 autocast: 0.50-0.57 s per iteration at 768x512 instead of 1.06-1.08 s (AMD EPYC, AVX-512 BF16).
It only steers the search: the refined latents are coded exactly, and kept only if their real cost is lower.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor

from .effort import Progress
from ..model.network import CLCModel
from ..model.quality import lambda_for_quality, rd_objective
from ..model.device import native_bf16
from ..model.entropy import rounded
from ..model.exact import round_ste
from ..model.reference import int8_to_values, values_to_tokens

RELAXATIONS = ("noise", "sga", "ste")
LR_SCALE = 0.06  # Adam's step is LR_SCALE / sqrt(iterations) (in quantisation steps): short runs move further
LR_END = 0.1  # cosine decay to this fraction of the first step
TAU_START, TAU_END = 0.5, 0.05  # SGA temperature, annealed geometrically over the iterations
TILE = 512  # refinement tile side in pixels (a multiple of 64): a few GB of activations at most
TILE_HALO = 64  # context around a tile (one hyper-latent row/column): optimised, not kept


def default_lr(iterations: int) -> float:
    return LR_SCALE / math.sqrt(max(1, iterations))


def _sga_round(v: Tensor, tau: float) -> Tensor:
    """A relaxed sample of round(v): floor or ceil, chosen by a Gumbel-softmax whose logits favour the nearer
    neighbour, sharper as tau -> 0 (stochastic Gumbel annealing)."""
    lo = torch.floor(v).detach()
    r = v - lo  # in [0, 1)
    eps = 1e-5
    logits = torch.stack((-torch.atanh(r.clamp(-1 + eps, 1 - eps)),
                          -torch.atanh((1 - r).clamp(-1 + eps, 1 - eps))), 0) / tau
    u = torch.rand_like(logits).clamp_(1e-10, 1 - 1e-10)
    w = torch.softmax((logits - torch.log(-torch.log(u))) / tau, 0)
    return lo + w[1]


def _z_likelihood(model: CLCModel, z_hat: Tensor) -> Tensor:
    eb = model.entropy_bottleneck
    c = z_hat.shape[1]
    values = z_hat.transpose(0, 1).reshape(c, 1, -1)
    lik, _, _ = eb._likelihood(values)
    return eb.likelihood_lower_bound(lik)


def _relax(v: Tensor, tau: float, mode: str) -> tuple[Tensor, Tensor]:
    """(value for the likelihood, value for the context and synthesis) of a relaxed round(v)."""
    if mode == "sga":
        t = _sga_round(v, tau)
        return t, t
    if mode == "ste":
        return rounded(v)
    return v + torch.empty_like(v).uniform_(-0.5, 0.5), round_ste(v)  # "noise": as in training


def _relaxed_rd(model: CLCModel, x: Tensor, y_s: Tensor, z: Tensor, lam: float, inv_gain: Tensor,
                q: Tensor, tokens: Tensor | None, tau: float, mode: str) -> Tensor:
    """The relaxed loss lambda * 255^2 * MSE + bpp of latents (y_s, z) for image x: the training forward pass
    with a relaxed rounding (`mode`) and the likelihoods of the relaxed values."""
    med = model._z_medians()
    z_lik, z_hat = _relax(z - med, tau, mode)
    z_hat = z_hat + med
    bits = -torch.log2(_z_likelihood(model, z_lik + med)).sum()
    feat, y_a, late = model._decoder_context(z_hat, tokens)
    y_hat, y_lik, y_a = model.entropy(y_s, feat, y_a, late, relax=lambda r: _relax(r, tau, mode))
    bits = bits - torch.log2(y_lik).sum()
    # channels_last: oneDNN's faster convolution layout on CPU (about -20 % per iteration)
    x_hat = model._synthesize(y_hat.contiguous(memory_format=torch.channels_last),
                              y_a.contiguous(memory_format=torch.channels_last), inv_gain, q)
    mse = (x_hat - x).pow(2).mean()
    return rd_objective(lam, mse, bits / (x.shape[-2] * x.shape[-1]))


def _tiles(size: int) -> list[tuple[int, int, int, int]]:
    """(keep_lo, keep_hi, ctx_lo, ctx_hi) pixel spans along one axis of a padded image: tiles of TILE pixels,
    each optimised with TILE_HALO of context on either side; one tile when the image is small enough."""
    if size <= TILE + 2 * TILE_HALO:
        return [(0, size, 0, size)]
    return [(lo, min(size, lo + TILE), max(0, lo - TILE_HALO), min(size, lo + TILE + TILE_HALO))
            for lo in range(0, size, TILE)]


def refine_latents(model: CLCModel, x: Tensor, y_s: Tensor, quality: float, ref_codes: Tensor | None,
                   iterations: int, progress: Progress | None = None, seed: int = 0, lr: float | None = None,
                   mode: str = "noise", tau_start: float = TAU_START, z: Tensor | None = None,
                   bf16: bool = True) -> tuple[Tensor, Tensor]:
    """Refined (y_s, z) for the padded image x (1, 3, H, W) in [0, 1], from the analysis's scaled latent y_s
    (and its hyper latent z, computed here if not given).

    Tile by tile (TILE pixels, TILE_HALO of context): the tile's latents are optimised with Adam on the relaxed
    rate-distortion loss at this quality's lambda; the model is frozen. Deterministic for a given seed.
    `lr` (default: default_lr(iterations)), `mode` (RELAXATIONS) and `tau_start` (SGA) are tuning knobs; `bf16`
    False keeps float32 where bf16 is native.
    """
    if mode not in RELAXATIONS:
        raise ValueError(f"mode must be one of {RELAXATIONS}, got {mode!r}")
    lr = default_lr(iterations) if lr is None else lr

    device = x.device
    q = torch.tensor([quality], device=device)
    inv_gain = model.gains(q)[1].detach()
    lam = float(lambda_for_quality(q.cpu()))
    tokens = None
    if ref_codes is not None and ref_codes.shape[0]:
        tokens = values_to_tokens(int8_to_values(ref_codes.clone(), torch.float32).unsqueeze(0))
    amp = (torch.autocast("cpu", dtype=torch.bfloat16) if native_bf16(device) and bf16
           else contextlib.nullcontext())
    y_out = y_s.clone()
    z_out = (model._hyper_analyse(y_s) if z is None else z).clone()
    rows, cols = _tiles(x.shape[-2]), _tiles(x.shape[-1])
    total, done = iterations * len(rows) * len(cols), 0
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for r0, r1, ra, rb in rows:
            for c0, c1, ca, cb in cols:
                xt = x[..., ra:rb, ca:cb].clone()
                yt = y_s[..., ra // 16: rb // 16, ca // 16: cb // 16].clone().requires_grad_(True)
                zt = model._hyper_analyse(yt.detach()).clone().requires_grad_(True)
                opt = torch.optim.Adam([yt, zt], lr=lr)
                for it in range(iterations):
                    frac = it / max(1, iterations - 1)
                    for g in opt.param_groups:
                        g["lr"] = lr * (LR_END + (1 - LR_END) * 0.5 * (1 + math.cos(math.pi * frac)))
                    tau = tau_start * (TAU_END / tau_start) ** frac
                    with amp:
                        loss = _relaxed_rd(model, xt, yt, zt, lam, inv_gain, q, tokens, tau, mode)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    done += 1
                    if progress:
                        progress(done, total)
                y_out[..., r0 // 16: r1 // 16, c0 // 16: c1 // 16] = \
                    yt.detach()[..., (r0 - ra) // 16: (r1 - ra) // 16, (c0 - ca) // 16: (c1 - ca) // 16]
                z_out[..., r0 // 64: r1 // 64, c0 // 64: c1 // 64] = \
                    zt.detach()[..., (r0 - ra) // 64: (r1 - ra) // 64, (c0 - ca) // 64: (c1 - ca) // 64]
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
        torch.random.set_rng_state(gen_state)
    return y_out, z_out
