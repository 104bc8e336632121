"""Band-wise evaluation of local (convolutional) networks: bounded memory for very large images.

A fully convolutional network is translation-equivariant, and an output row depends only on the input rows
within the network's receptive radius. Evaluating it on horizontal bands that overlap by a halo of at least
that radius, and keeping each band's interior, therefore gives the whole-image output:

* bit for bit on the exact networks: the probability path (exact.py) and the exact synthesis (synthesis.py),
  whatever the band size, since every sum there is exact;
* up to the last bits of float sums on the float networks (the encoder's g_a and h_a). Those never run in a
  decoder, and the band plan is a pure function of the image size, so an encoder always makes the same plan.

Works on torch tensors and on numpy arrays alike (lite.py, the torch-free decoder, runs the same plans).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Tensor = Any  # a torch.Tensor or a numpy array

# Coding evaluates the networks in horizontal bands of about this many positions: whole-image up to about 4 MP,
# bounded memory beyond. Halos cover each network's receptive radius.
PIXEL_BAND = 1 << 22  # pixels per band of g_a
# The exact (float64) synthesis runs on smaller bands: its deconvolutions take the unblocked float64 path,
# whose column buffer holds C*k*k values per input position: a 3840x2160 decode peaked at 10.1 GB with 4 MP
# bands, 4.8 GB with 1 MP bands (and ran 8 % faster). Any band plan gives the same pixels (synthesis.py).
SYNTHESIS_BAND = 1 << 20
SYNTHESIS_MIN_ROWS = 256  # 16 latent rows: on very wide images the 2 x 3-row halo stays a modest overhead
FAST_SYNTHESIS_BAND = 1 << 22  # the float32 synthesis needs far less memory per position
LATENT_BAND = 1 << 15  # latent positions per band of h_a, h_s, the CLM and the slice networks
# receptive radius of the synthesis in latent rows: CLS gate 3x3 (1) + four 5x5 stride-2 deconvolutions
# (1 + 1/2 + 1/4 + 1/8) = 2.875
SYNTHESIS_HALO = 3


def band_rows(width: int, budget: int, multiple: int, minimum: int) -> int:
    """Rows per band so that a band holds about `budget` positions of a `width`-wide map."""
    rows = max(minimum, budget // max(1, width))
    return max(multiple, rows // multiple * multiple)


def analysis_band(width: int) -> int:
    """Pixel rows per band of g_a for an image `width` wide (a multiple of 64: whole latent and z rows)."""
    return band_rows(width, PIXEL_BAND, 64, 64)


def latent_band(width: int) -> int:
    """Latent rows per band for a latent `width` wide (a multiple of 4: h_s and h_a change scale by 4)."""
    return band_rows(width, LATENT_BAND, 4, 4)


def synthesis_band(latent_width: int, exact: bool) -> int:
    """Latent rows per band of the exact or the fast synthesis of a latent `latent_width` wide."""
    return band_rows(16 * latent_width, SYNTHESIS_BAND if exact else FAST_SYNTHESIS_BAND, 64, SYNTHESIS_MIN_ROWS) // 16


def map_bands(fn: Callable[..., Tensor], inputs: Tensor | Sequence[Tensor], band: int, halo: int,
              up: int = 1, down: int = 1) -> Tensor:
    """fn(*inputs) computed band by band along the rows (dim -2).

    Every input has the same number of rows H; the output has ceil(H * up / down) rows (a strided network's, for
    any H). `band` and `halo` count input rows and must be multiples of `down` (so band edges fall on the output
    grid); `halo` must cover fn's receptive radius in input rows. With H <= band this is exactly fn(*inputs).
    """
    xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
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
        keep = y[..., (lo - a) * up // down : -(-(hi - a) * up // down), :]  # (only the last hi may not divide)
        if out is None:  # allocated once: no list of pieces plus a concatenated copy
            shape = (*keep.shape[:-2], -(-H * up // down), keep.shape[-1])
            out = np.empty(shape, keep.dtype) if isinstance(keep, np.ndarray) else keep.new_empty(shape)
        out[..., lo * up // down : -(-hi * up // down), :] = keep
        del y, keep
    assert out is not None
    return out


def map_tiles(fn: Callable[[Tensor], Tensor], x: Tensor, side: int, halo: int, down: int = 1) -> Tensor:
    """fn(x) computed on tiles of at most side x side positions of x (..., H, W), all of about one size (the
    last row and column of tiles may be smaller): map_bands along the rows, then along the columns of each band
    (a transposed view: fn sees the original orientation). `side` and `halo` must be multiples of `down`. Square
    tiles keep the halo's share small on wide images, where full-width bands of the same area would be only a
    few rows high."""
    if side <= 0 or side % down or halo % down:
        raise ValueError(f"tile side {side} and halo {halo} must be positive multiples of {down}")

    def even(n: int) -> int:  # the tile length that splits n into equal parts (multiples of down) of <= side
        return -(-n // -(-n // side) // down) * down

    def columns(band: Tensor) -> Tensor:
        return map_bands(lambda u: fn(u.swapaxes(-1, -2)).swapaxes(-1, -2), band.swapaxes(-1, -2),
                         even(band.shape[-1]), halo, down=down).swapaxes(-1, -2)

    return map_bands(columns, x, even(x.shape[-2]), halo, down=down)
