"""Bjøntegaard delta rate (BD-rate) and delta PSNR (BD-PSNR).

Method (G. Bjøntegaard, VCEG-M33, 2001; the classic cubic-polynomial form CompressAI and most papers use):

1. Each curve is a set of (rate, quality) points; rate in bpp, quality in dB (PSNR, or MS-SSIM in dB).
2. Fit log(rate) as a cubic polynomial of quality, by least squares (numpy.polyfit, degree 3; with exactly four
   points this interpolates them), separately for the reference curve and the test curve.
3. Integrate both polynomials over the *overlapping* quality interval [max(min q), min(max q)] and divide by
   its width: the mean log-rate of each curve over the shared quality range.
4. BD-rate = exp(mean log-rate(test) - mean log-rate(reference)) - 1, in percent. Negative = the test codec
   needs fewer bits than the reference for the same quality. Natural log or log10 give the same result.

BD-PSNR swaps the roles: quality as a cubic of log-rate, integrated over the overlapping log-rate range; the
mean difference in dB.

The "<= 1 bpp" variant (what ../shared/anchors/README.md quotes: "BD-rate vs VTM in the <= 1 bpp
range") first drops every point above 1 bpp from *both* curves, then does steps 2-4 on what is left. This
reproduces those published numbers to within 0.5 percentage point (tests/test_eval.py checks it): WebP +94.0 %
(README +94 %), bmshj2018-hyperprior +36.1 % (+36 %), BPG +31.3 % (+31 %), and the locally measured codecs
exactly (x265 +30.6 %, AVIF 4:4:4 +42.2 %, cwebp +101.1 %, libjpeg-turbo 4:2:0 +238.7 %).

A BD value needs at least four points per curve (a cubic) and a non-empty quality overlap; otherwise
`BDRateError` says why. BD numbers are only meaningful where both curves are monotonic and overlap over a
reasonable range: report the range (`BDResult.overlap`) with the number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 4


class BDRateError(ValueError):
    """A BD value is undefined for these curves (too few points, no overlap, bad rates)."""


@dataclass(frozen=True)
class BDResult:
    value: float | None  # percent (BD-rate) or dB (BD-PSNR); None when undefined
    overlap: tuple[float, float] | None  # the shared quality (BD-rate) or log-rate (BD-PSNR) interval
    points: tuple[int, int]  # points used from the reference and the test curve
    reason: str | None = None  # why `value` is None

    def to_dict(self) -> dict:
        return {"value": self.value, "overlap": list(self.overlap) if self.overlap else None,
                "points": list(self.points), "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.value:+.1f} %" if self.value is not None else f"n/a ({self.reason})"


def _prepare(rate: Sequence[float], quality: Sequence[float], max_rate: float | None,
             which: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise BDRateError(f"{which} curve: {r.size} rates but {q.size} quality values")
    keep = np.isfinite(r) & np.isfinite(q)
    if max_rate is not None:
        keep &= r <= max_rate
    r, q = r[keep], q[keep]
    if np.any(r <= 0):
        raise BDRateError(f"{which} curve has a non-positive rate")
    if r.size < MIN_POINTS:
        cut = f" at or below {max_rate:g} bpp" if max_rate is not None else ""
        raise BDRateError(f"{which} curve has {r.size} points{cut}, a cubic fit needs {MIN_POINTS}")
    if np.unique(q).size < MIN_POINTS or np.unique(r).size < MIN_POINTS:
        raise BDRateError(f"{which} curve has fewer than {MIN_POINTS} distinct points")
    order = np.argsort(r)
    return r[order], q[order]


def _mean_of_fit(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the least-squares cubic y(x) over [lo, hi]."""
    scale = max(abs(float(x.min())), abs(float(x.max())), 1.0)  # conditioning only; exact in real arithmetic
    coeffs = np.polyfit(x / scale, y, 3)
    prim = np.polyint(coeffs)
    return float((np.polyval(prim, hi / scale) - np.polyval(prim, lo / scale)) * scale / (hi - lo))


def bd_rate(ref_rate: Sequence[float], ref_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], max_rate: float | None = None) -> float:
    """BD-rate of the test curve against the reference curve, in percent (negative = test saves bits).

    `max_rate`: drop points above this rate (bpp) from both curves first (the "<= 1 bpp" variant).
    Raises BDRateError when undefined.
    """
    return bd_rate_result(ref_rate, ref_quality, test_rate, test_quality, max_rate, strict=True).value  # type: ignore[return-value]


def bd_rate_result(ref_rate: Sequence[float], ref_quality: Sequence[float], test_rate: Sequence[float],
                   test_quality: Sequence[float], max_rate: float | None = None, strict: bool = False) -> BDResult:
    """Like bd_rate, but returns a BDResult (value None and a reason instead of raising, unless strict)."""
    try:
        rr, rq = _prepare(ref_rate, ref_quality, max_rate, "reference")
        tr, tq = _prepare(test_rate, test_quality, max_rate, "test")
        lo, hi = max(rq.min(), tq.min()), min(rq.max(), tq.max())
        if not hi > lo:
            raise BDRateError(f"no quality overlap (reference {rq.min():.2f}..{rq.max():.2f}, "
                              f"test {tq.min():.2f}..{tq.max():.2f})")
        diff = _mean_of_fit(tq, np.log(tr), lo, hi) - _mean_of_fit(rq, np.log(rr), lo, hi)
        return BDResult(100.0 * (math.exp(diff) - 1.0), (float(lo), float(hi)), (rr.size, tr.size))
    except BDRateError as e:
        if strict:
            raise
        return BDResult(None, None, (0, 0), str(e))


def bd_psnr(ref_rate: Sequence[float], ref_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], max_rate: float | None = None) -> float:
    """BD-PSNR (mean quality gain in dB of the test curve at equal rate). Raises BDRateError when undefined."""
    rr, rq = _prepare(ref_rate, ref_quality, max_rate, "reference")
    tr, tq = _prepare(test_rate, test_quality, max_rate, "test")
    lr, lt = np.log(rr), np.log(tr)
    lo, hi = max(lr.min(), lt.min()), min(lr.max(), lt.max())
    if not hi > lo:
        raise BDRateError("no rate overlap")
    return _mean_of_fit(lt, tq, lo, hi) - _mean_of_fit(lr, rq, lo, hi)


def msssim_db(values: Sequence[float]) -> list[float]:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM): the usual scale for BD-rate and plots on MS-SSIM."""
    return [-10.0 * math.log10(max(1.0 - float(v), 1e-10)) for v in values]
