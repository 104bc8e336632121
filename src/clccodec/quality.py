"""The quality knob, in one place: its range, default, the grid files store it on, and the interpolation.

Quality q is continuous in [QUALITY_MIN, QUALITY_MAX]. Integer q in [TRAINED_MIN, QUALITY_MAX] trains against
LAMBDAS[q - 1] (CompressAI's MSE ladder, bmshj2018 / mbt2018 / cheng2020 presets 1..8); the model learns one gain
vector per integer level, and a fractional q interpolates log-linearly between its two neighbours
(`level_weights`). Below the first learned level, q in [QUALITY_MIN, TRAINED_MIN) extrapolates the line through
levels 1 and 2 (lambdas and gains alike): smaller files for rate targets the learned ladder cannot reach, at
qualities the trainer never samples. A .clc file stores round(q * QUALITY_SCALE), so every coded quality is exact
in binary (`quantize_quality`).

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
DEFAULT_QUALITY = 3.0
QUALITY_SCALE = 256  # .clc files store round(q * 256)


def quality_is_valid(q: float) -> bool:
    return math.isfinite(q) and QUALITY_MIN <= q <= QUALITY_MAX


def quantize_quality(q: float) -> float:
    """The quality actually coded (the container stores it on a 1/256 grid)."""
    return round(q * QUALITY_SCALE) / QUALITY_SCALE


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


def lambda_at(q: float) -> float:
    """The lambda of one quality, in plain floats: the scalar twin of model.codec.lambda_for_quality."""
    pos = min(q - TRAINED_MIN, len(LAMBDAS) - 1)
    lo = min(max(math.floor(pos), 0), len(LAMBDAS) - 2)
    t = pos - lo
    return math.exp(math.log(LAMBDAS[lo]) * (1 - t) + math.log(LAMBDAS[lo + 1]) * t)
