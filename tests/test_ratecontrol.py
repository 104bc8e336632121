"""Rate control: the quality search on synthetic size/PSNR curves (every edge case), then on real encodes."""

from __future__ import annotations

import math

import pytest

from clccodec import Codec, read_info
from clccodec.errors import UsageError
from clccodec.format.container import QUALITY_SCALE
from clccodec.model.quality import QUALITY_MAX, QUALITY_MIN
from clccodec.encoding.ratecontrol import MAX_PROBES, PSNR_TOLERANCE, SIZE_TOLERANCE, Target, search_quality

from .conftest import assert_one_line_error, run_clc, synthetic_photo


def size_curve(q: float) -> float:  # bytes: exponential in quality with a little ripple (real files are not smooth)
    return 1000 * math.exp(0.5 * q) * (1 + 0.004 * math.sin(37 * q))


def probe_size(q):
    assert q * QUALITY_SCALE == round(q * QUALITY_SCALE) and QUALITY_MIN <= q <= QUALITY_MAX  # on the grid
    return size_curve(q), q


@pytest.mark.parametrize("budget", [2000, 5000, 20000, 50000])
def test_size_is_a_budget(budget):
    r = search_quality(Target("size", budget), probe_size)
    assert r.note is None and len(r.probes) <= MAX_PROBES
    assert budget * (1 - SIZE_TOLERANCE) <= r.best.value <= budget


@pytest.mark.parametrize("bpp", [0.05, 0.5, 0.9])
def test_bpp_is_the_closest(bpp):
    pixels = 512 * 768
    r = search_quality(Target("bpp", bpp), lambda q: (8 * size_curve(q) / pixels, q))
    assert r.note is None and abs(r.best.value / bpp - 1) <= 0.005


def test_psnr_is_a_floor():
    r = search_quality(Target("psnr", 31.3), lambda q: (25 + 1.3 * q + 0.02 * math.sin(50 * q), q))
    assert r.note is None and 31.3 <= r.best.value <= 31.3 + PSNR_TOLERANCE


def test_unreachable_targets_give_the_nearest_file_and_say_so():
    low = search_quality(Target("size", 100), probe_size)
    assert low.best.quality == QUALITY_MIN and "not met" in low.note and "lowest" in low.note
    high = search_quality(Target("size", 10**9), probe_size)
    assert high.best.quality == QUALITY_MAX and "not met" not in high.note and "highest" in high.note
    assert len(low.probes) <= 3 and len(high.probes) <= 3  # it stops at the end of the range, no wandering
    psnr = search_quality(Target("psnr", 80), lambda q: (25 + q, q))
    assert psnr.best.quality == QUALITY_MAX and "33.00 dB" in psnr.note


def test_a_flat_curve_stops():
    r = search_quality(Target("size", 500), lambda q: (1000.0, q))
    assert r.note and len(r.probes) <= MAX_PROBES


def test_bad_targets():
    for kind, v in (("size", 0), ("bpp", -1), ("psnr", float("nan")), ("ssim", 1)):
        with pytest.raises(UsageError):
            Target(kind, v)


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


def test_real_target_size_and_bpp(codec):
    img = synthetic_photo(128, 192, seed=2)
    small, big = len(codec.encode(img, 1.0, 0)), len(codec.encode(img, 8.0, 0))
    budget = (small + big) // 2
    r = codec.encode_full(img, refs=0, target_size=budget)
    assert len(r.data) <= budget and not r.notes and read_info(r.data)["quality"] == r.quality
    bpp = 8 * budget / (128 * 192)
    r2 = codec.encode_full(img, refs=0, target_bpp=bpp)
    assert abs(read_info(r2.data)["bpp"] / bpp - 1) <= 0.03
    r3 = codec.encode_full(img, refs=0, target_size=10)
    assert len(r3.data) == small and "not met" in r3.notes[-1]  # the smallest file there is
    with pytest.raises(UsageError, match="at most one"):
        codec.encode_full(img, target_size=budget, target_bpp=1.0)


def test_real_target_psnr_reconstructs(codec):
    from clccodec.evaluation.metrics import psnr

    img = synthetic_photo(128, 192, seed=2)
    lo = psnr(img, codec.decode_pixels(codec.encode(img, 1.0, 0))[0])
    hi = psnr(img, codec.decode_pixels(codec.encode(img, 8.0, 0))[0])
    goal = (lo + hi) / 2
    r = codec.encode_full(img, refs=0, target_psnr=goal, reconstruct=True)
    assert psnr(img, codec.decode_pixels(r.data)[0]) >= goal
    assert psnr(img, r.reconstruction) >= goal


def test_cli_targets(tmp_path, tiny_model_path, photo_png):
    out = tmp_path / "t.clc"
    r = run_clc("encode", str(photo_png), "-o", str(out), "--model", str(tiny_model_path), "--dict", "none",
                "--target-size", "100000")
    assert r.returncode == 0 and "q 8" in r.stderr.decode() and "is the highest" in r.stderr.decode()
    assert_one_line_error(run_clc("encode", str(photo_png), "-q", "3", "--target-bpp", "0.5", "--model",
                                  str(tiny_model_path)), "cannot be combined")
    assert_one_line_error(run_clc("encode", str(photo_png), "--target-psnr", "30", "--target-bpp", "0.5",
                                  "--model", str(tiny_model_path)), "cannot be combined")
