"""Band-wise evaluation of local (convolutional) networks: bounded memory for very large images.

A fully convolutional network is translation-equivariant, and an output row depends only on the input rows
within the network's receptive radius. Evaluating it on horizontal bands that overlap by a halo of at least
that radius, and keeping each band's interior, therefore gives the whole-image output:

* bit for bit on the exact networks: the probability path (exact.py) and the exact synthesis (synthesis.py),
  whatever the band size, since every sum there is exact;
* up to the last bits of float sums on the float networks (the encoder's g_a and h_a). Those never run in a
  decoder, and the band plan is a pure function of the image size, so an encoder always makes the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def band_rows(width: int, budget: int, multiple: int, minimum: int) -> int:
    """Rows per band so that a band holds about `budget` positions of a `width`-wide map."""
    rows = max(minimum, budget // max(1, width))
    return max(multiple, rows // multiple * multiple)


def map_bands(fn: Callable[..., Tensor], inputs: Tensor | Sequence[Tensor], band: int, halo: int,
              up: int = 1, down: int = 1) -> Tensor:
    """fn(*inputs) computed band by band along the rows (dim -2).

    Every input has the same number of rows H; the output has H * up / down rows. `band` and `halo` count input
    rows and must be multiples of `down` (so band edges fall on the output grid); `halo` must cover fn's
    receptive radius in input rows. With H <= band this is exactly fn(*inputs).
    """
    xs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    H = xs[0].shape[-2]
    if H <= band:
        return fn(*xs)
    if band % down or halo % down:
        raise ValueError(f"band {band} and halo {halo} must be multiples of {down}")
    out: Tensor | None = None
    for lo in range(0, H, band):
        hi = min(H, lo + band)
        a, b = max(0, lo - halo), min(H, hi + halo)
        y = fn(*[x[..., a:b, :] for x in xs])
        keep = y[..., (lo - a) * up // down : (hi - a) * up // down, :]
        if out is None:  # allocated once: no list of pieces plus a concatenated copy
            out = torch.empty((*keep.shape[:-2], H * up // down, keep.shape[-1]), dtype=keep.dtype,
                              device=keep.device)
        out[..., lo * up // down : hi * up // down, :] = keep
        del y, keep
    assert out is not None
    return out
