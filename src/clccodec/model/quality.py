"""The quality knob, in one place: its range, default, the grid files store it on, and the interpolation.

Quality q is continuous in [QUALITY_MIN, QUALITY_MAX]. Integer q in [TRAINED_MIN, QUALITY_MAX] trains against
LAMBDAS[q - 1] (CompressAI's MSE ladder, bmshj2018 / mbt2018 / cheng2020 presets 1..8); the model learns one gain
vector per integer level, and a fractional q interpolates log-linearly between its two neighbours
(`level_weights`). Below the first learned level, q in [QUALITY_MIN, TRAINED_MIN) extrapolates the line through
levels 1 and 2 (lambdas and gains alike): smaller files for rate targets the learned ladder cannot reach, at
qualities the trainer never samples. A .clc file stores q on a 1/256 grid (format/container.py,
`quantize_quality`).

Importing this module does not import torch (the CLI reads the bounds from here); `interpolate_log_table` works
on whatever tensor it is given.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import Any

LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
TRAINED_MIN = 1.0  # the quality of the first learned level; the trainer samples [TRAINED_MIN, QUALITY_MAX]
QUALITY_MIN = 0.0  # below TRAINED_MIN: extrapolated (see the module note)
QUALITY_MAX = float(len(LAMBDAS))


def quality_is_valid(q: float) -> bool:
    return math.isfinite(q) and QUALITY_MIN <= q <= QUALITY_MAX


def level_weights(q: Decimal, levels: int) -> tuple[int, Decimal]:
    """(lo, t): quality q sits between learned levels lo and lo + 1, a fraction t of the way (exact arithmetic).

    t < 0 below the first level (extrapolation). The scalar twin of `interpolate_log_table` (same clamping), for
    the exact synthesis's gains.
    """
    pos = min(Decimal(q) - Decimal(TRAINED_MIN), Decimal(levels - 1))
    lo = min(max(int(pos.to_integral_value(ROUND_FLOOR)), 0), levels - 2)
    return lo, pos - lo


def interpolate_log_table(table: Any, q: Any) -> Any:
    """exp of the log-linear interpolation of a per-level table at (fractional) qualities.

    table (levels, *rest) holds logs (of lambdas, gains, ...); q (B,) -> (B, *rest). Used in training and coding
    (float): the lambda for a quality and the model's gains.
    """
    levels = table.shape[0]
    pos = (q.float() - TRAINED_MIN).clamp(max=levels - 1)
    lo = pos.floor().clamp(0, levels - 2).long()
    t = (pos - lo).reshape(-1, *([1] * (table.dim() - 1)))
    return (table[lo] * (1 - t) + table[lo + 1] * t).exp()


def lambda_for_quality(q: Any) -> Any:
    """The lambda at (fractional) qualities q (B,), a tensor: the ladder interpolated (float32)."""
    return interpolate_log_table(q.float().new_tensor(LAMBDAS).log(), q)


def lambda_at(q: float) -> float:
    """The lambda of one quality, in plain floats: the scalar twin of lambda_for_quality."""
    pos = min(q - TRAINED_MIN, len(LAMBDAS) - 1)
    lo = min(max(math.floor(pos), 0), len(LAMBDAS) - 2)
    t = pos - lo
    return math.exp(math.log(LAMBDAS[lo]) * (1 - t) + math.log(LAMBDAS[lo + 1]) * t)


DISTORTION_SCALE = 255**2  # the objective weighs the MSE of [0, 1] pixels as an 8-bit MSE


def rd_objective(lam: Any, mse: Any, bpp: Any) -> Any:
    """The one objective of training, refinement and the encoder's choices: lambda * 255^2 * MSE + bpp (MSE on
    [0, 1] pixels; floats or tensors)."""
    return lam * DISTORTION_SCALE * mse + bpp


def mse_worth(bpp: float, lam: float) -> float:
    """The MSE (on [0, 1] pixels) that costs as much as `bpp` in rd_objective at this lambda."""
    return bpp / (lam * DISTORTION_SCALE)
