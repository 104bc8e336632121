"""Rate control: find the quality that hits a target file size, bits per pixel or PSNR, on real bytes.

Every probe is a real encode at one quality (on the container's 1/256 quality grid). File size and PSNR grow
with quality, so the search brackets the target and closes in with the Illinois variant of regula falsi (on
log-size, where size is nearly exponential in quality, and on PSNR directly). What counts as hitting a target:

* `bpp`: the closest file (relative error), stopping within BPP_TOLERANCE; met within BPP_MET;
* `size`: a budget: the largest file that does not exceed it (stopping within SIZE_TOLERANCE below it);
* `psnr`: a floor: the smallest file that reaches it (stopping within PSNR_TOLERANCE dB above it).

A target that cannot be met (outside what the quality range reaches) is not an error: the search returns the
nearest file (often the smallest or the largest quality) with a note saying what was reached instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import UsageError
from ..format.container import QUALITY_SCALE, quantize_quality
from ..model.quality import QUALITY_MAX, QUALITY_MIN

T = TypeVar("T")

TARGET_KINDS = ("bpp", "size", "psnr")
BPP_TOLERANCE = 0.005  # relative
BPP_MET = 0.03  # relative: further off than this, the result says the target was not met
SIZE_TOLERANCE = 0.01  # relative, below the budget
PSNR_TOLERANCE = 0.02  # dB, above the floor
MAX_PROBES = 14
START_QUALITY = 3.0
# Typical slopes of the shipped model (log bytes and dB per quality step): only where the first guesses go.
SLOPE = {"bpp": 0.45, "size": 0.45, "psnr": 1.2}


@dataclass(frozen=True)
class Target:
    kind: str  # one of TARGET_KINDS
    value: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise UsageError(f"target kind must be one of {', '.join(TARGET_KINDS)}, got {self.kind!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise UsageError(f"target {self.kind} must be a positive number, got {self.value}")

    def describe(self, value: float) -> str:
        return {"bpp": f"{value:.4f} bpp", "size": f"{int(value)} bytes", "psnr": f"{value:.2f} dB"}[self.kind]

    def _h(self, value: float) -> float:
        """The search's coordinate: log for sizes, dB as they are."""
        return value if self.kind == "psnr" else math.log(max(value, 1e-12))

    def error(self, value: float) -> float:
        return self._h(value) - self._h(self.value)

    def satisfied(self, value: float) -> bool:
        if self.kind == "bpp":
            return abs(value / self.value - 1) <= BPP_TOLERANCE
        if self.kind == "size":
            return self.value * (1 - SIZE_TOLERANCE) <= value <= self.value
        return self.value <= value <= self.value + PSNR_TOLERANCE

    def met(self, value: float) -> bool:
        return abs(value / self.value - 1) <= BPP_MET if self.kind == "bpp" else self.acceptable(value)

    def acceptable(self, value: float) -> bool:
        """On the right side of the target (any value for bpp)."""
        return self.kind == "bpp" or (value <= self.value if self.kind == "size" else value >= self.value)


@dataclass
class Probe(Generic[T]):
    quality: float
    value: float  # bpp, bytes or PSNR of this encode
    result: T


@dataclass
class SearchResult(Generic[T]):
    best: Probe[T]
    probes: list[Probe[T]]
    note: str | None  # set when the target was not met


def search_quality(target: Target, encode_at: Callable[[float], tuple[float, T]],
                   lo: float = QUALITY_MIN, hi: float = QUALITY_MAX, start: float = START_QUALITY,
                   max_probes: int = MAX_PROBES) -> SearchResult[T]:
    """Search qualities in [lo, hi]; encode_at(q) -> (measured value, result) for a grid quality q."""
    probes: dict[float, Probe[T]] = {}
    step = 1 / QUALITY_SCALE

    def probe(q: float) -> Probe[T]:
        q = min(hi, max(lo, quantize_quality(q)))
        if q not in probes:
            value, result = encode_at(q)
            probes[q] = Probe(q, value, result)
        return probes[q]

    def done(p: Probe[T]) -> bool:
        return target.satisfied(p.value) or len(probes) >= max_probes

    def toward(p: Probe[T], q: float) -> float:
        """q on the grid, at least one step from p in the direction that reduces p's error."""
        q = quantize_quality(q)
        up = target.error(p.value) < 0
        return max(q, p.quality + step) if up else min(q, p.quality - step)

    def blocked(p: Probe[T]) -> bool:  # at the end of the range, and the target lies beyond it
        return p.quality >= hi if target.error(p.value) < 0 else p.quality <= lo

    # 1. bracket: from the start quality along the typical slope, then along the secant, overshooting on purpose
    a = probe(start)
    if done(a) or blocked(a):
        return _choose(target, list(probes.values()))
    b = probe(toward(a, a.quality - target.error(a.value) / SLOPE[target.kind]))
    while not done(b) and (target.error(a.value) < 0) == (target.error(b.value) < 0):
        if blocked(b):
            return _choose(target, list(probes.values()))
        slope = (target._h(b.value) - target._h(a.value)) / (b.quality - a.quality)
        if not slope > 0:
            slope = SLOPE[target.kind]
        a, b = b, probe(toward(b, b.quality - 2 * target.error(b.value) / slope))
    # 2. Illinois regula falsi inside the bracket [a, b]
    fa, fb = target.error(a.value), target.error(b.value)
    while not done(b) and abs(b.quality - a.quality) > step:
        q = quantize_quality(b.quality - fb * (b.quality - a.quality) / (fb - fa))
        if q in (a.quality, b.quality) or not min(a.quality, b.quality) < q < max(a.quality, b.quality):
            q = quantize_quality((a.quality + b.quality) / 2)  # stuck on the grid: bisect
            if q in (a.quality, b.quality):
                break
        c = probe(q)
        fc = target.error(c.value)
        if (fc < 0) == (fb < 0):
            fa /= 2  # Illinois: the stale end's weight is halved, so the bracket keeps shrinking from both sides
        else:
            a, fa = b, fb
        b, fb = c, fc
    return _choose(target, list(probes.values()))


def _choose(target: Target, probes: list[Probe[T]]) -> SearchResult[T]:
    ok = [p for p in probes if target.acceptable(p.value)]
    if target.kind == "bpp":
        best = min(probes, key=lambda p: abs(math.log(p.value / target.value)))
    elif ok:  # the best file on the right side: largest under the budget, smallest over the floor
        best = max(ok, key=lambda p: p.value) if target.kind == "size" else min(ok, key=lambda p: p.value)
    else:  # unreachable: the nearest
        best = min(probes, key=lambda p: abs(target.error(p.value)))
    note = None
    end = ("" if QUALITY_MIN < best.quality < QUALITY_MAX else
           f" (quality {best.quality:g} is the {'lowest' if best.quality <= QUALITY_MIN else 'highest'})")
    if not target.met(best.value):
        note = (f"target {target.describe(target.value)} not met: reached {target.describe(best.value)} at "
                f"quality {best.quality:g}{end}")
    elif end and not target.satisfied(best.value):  # e.g. a budget larger than the best file
        note = f"target {target.describe(target.value)}: {target.describe(best.value)} at quality {best.quality:g}{end}"
    return SearchResult(best, sorted(probes, key=lambda p: p.quality), note)
