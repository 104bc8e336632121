"""`clc eval` and clccodec.evaluation: BD-rate with known answers, metrics on known inputs, real file sizes."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as reference_ms_ssim

from clccodec import Codec
from clccodec.evaluation import anchors, bd, classical, metrics, runner

from .conftest import REPO, run_clc, synthetic_photo

# -- BD-rate ------------------------------------------------------------------------------------------------------

RATES = [0.06, 0.13, 0.27, 0.52, 0.95, 1.6]
PSNRS = [26.5, 28.9, 31.6, 34.4, 37.2, 40.1]


def test_bd_rate_identity_is_zero():
    assert bd.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd.bd_rate(RATES, PSNRS, RATES, PSNRS, max_rate=1.0) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor", [0.9, 0.5, 1.25])
def test_bd_rate_scaled_rates(factor):
    scaled = [r * factor for r in RATES]
    assert bd.bd_rate(RATES, PSNRS, scaled, PSNRS) == pytest.approx(100 * (factor - 1), abs=1e-6)


def test_bd_rate_scaled_by_0_9_is_minus_10_percent_on_other_points():
    # the test curve sampled at different qualities of the same underlying law, every rate x 0.9
    law = lambda q: 0.02 * math.exp(0.23 * (q - 24))  # noqa: E731
    ref_q = [27.0, 30.0, 33.0, 36.0, 39.0]
    test_q = [26.0, 28.5, 31.0, 34.5, 38.0, 41.0]
    got = bd.bd_rate([law(q) for q in ref_q], ref_q, [0.9 * law(q) for q in test_q], test_q)
    assert got == pytest.approx(-10.0, abs=1e-6)


def test_bd_psnr_shift():
    assert bd.bd_psnr(RATES, PSNRS, RATES, [p + 0.5 for p in PSNRS]) == pytest.approx(0.5, abs=1e-9)


def test_bd_rate_undefined_cases():
    with pytest.raises(bd.BDRateError, match="4"):
        bd.bd_rate(RATES, PSNRS, RATES[:3], PSNRS[:3])
    with pytest.raises(bd.BDRateError, match="overlap"):
        bd.bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])
    with pytest.raises(bd.BDRateError, match="1 bpp"):
        bd.bd_rate(RATES, PSNRS, [r + 0.7 for r in RATES], PSNRS, max_rate=1.0)
    r = bd.bd_rate_result(RATES, PSNRS, [0.1] * 6, PSNRS)  # constant rate: not a curve
    assert r.value is None and "distinct" in r.reason


def test_bd_rate_reproduces_the_anchor_readme_ladder():
    """The shared anchors README quotes BD-rate vs VTM (<= 1 bpp); published values are rounded to 1 %."""
    vtm = anchors.load("vtm")
    for key, quoted in anchors.README_LADDER.items():
        c = anchors.load(key)
        got = bd.bd_rate(vtm.bpp, vtm.psnr, c.bpp, c.psnr, max_rate=1.0)
        tol = 0.05 if key.startswith("local-") else 0.5  # measured_here values are quoted to 0.1 %
        assert abs(got - quoted) <= tol, (key, got, quoted)


def test_every_anchor_loads():
    for key in anchors.names():
        c = anchors.load(key)
        assert len(c.bpp) == len(c.psnr) >= 4 and c.bpp == sorted(c.bpp)
    assert (anchors.DATA / "SOURCES.md").exists()


# -- metrics ------------------------------------------------------------------------------------------------------


def test_psnr_known_values():
    a = np.full((20, 30, 3), 100, np.uint8)
    b = np.full((20, 30, 3), 110, np.uint8)  # MSE 100
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    c = a.copy()
    c[0, 0, 0] = 255  # one sample off by 155: MSE = 155^2 / 1800
    assert metrics.psnr(a, c) == pytest.approx(10 * math.log10(255**2 * 1800 / 155**2))
    assert metrics.psnr(a, a) == metrics.PSNR_CAP


def test_ms_ssim_known_values():
    a = np.full((176, 192, 3), 100, np.uint8)  # sides divisible by 16: no zero padding in the 2x pooling
    b = np.full((176, 192, 3), 110, np.uint8)
    # flat images: every contrast-structure term is 1, only the coarsest scale's luminance term remains
    c1 = (0.01 * 255) ** 2
    lum = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    value, scales = metrics.ms_ssim(a, b)
    # float32 (as CompressAI computes it): E[x^2] - E[x]^2 cancellation costs ~3e-5 here; float64 gives 1e-7
    assert scales == 5 and value == pytest.approx(lum ** metrics.MSSSIM_WEIGHTS[-1], abs=1e-4)
    assert metrics.ms_ssim(a, a)[0] == pytest.approx(1.0)


def test_ms_ssim_matches_pytorch_msssim_and_small_images_fall_back():
    x = synthetic_photo(176, 200)
    y = np.clip(x.astype(int) + np.random.default_rng(1).integers(-12, 13, x.shape), 0, 255).astype(np.uint8)
    ref = float(reference_ms_ssim(torch.tensor(x).permute(2, 0, 1)[None].float(),
                                  torch.tensor(y).permute(2, 0, 1)[None].float(), data_range=255))
    assert metrics.ms_ssim(x, y) == (pytest.approx(ref, abs=1e-6), 5)
    for side, scales in ((120, 4), (40, 2), (12, 1), (7, 1)):
        v, k = metrics.ms_ssim(x[:side, :side], y[:side, :side])
        assert k == scales and 0 < v < 1
        assert metrics.ms_ssim(x[:side, :side], x[:side, :side])[0] == pytest.approx(1.0)


# -- classical codecs and runner pieces ---------------------------------------------------------------------------


def test_classical_bytes_are_what_pillow_writes_to_disk(tmp_path):
    px = synthetic_photo(64, 80)
    for c in classical.parse_codecs("jpeg,webp"):
        data = c.encode(px, c.values[3])
        path = tmp_path / f"x.{c.fmt.lower()}"
        Image.fromarray(px).save(path, format=c.fmt, **c.options, **{c.param: c.values[3]})
        assert path.read_bytes() == data
        assert c.decode(data).shape == px.shape
    assert [c.key for c in classical.parse_codecs("default")] == list(classical.DEFAULT)
    assert classical.parse_codecs("none") == []
    with pytest.raises(KeyError):
        classical.parse_codecs("jpeg,nope")


def test_parse_qualities():
    assert runner.parse_qualities("1-8") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert runner.parse_qualities("1-3:0.5,8") == [1, 1.5, 2, 2.5, 3, 8]
    assert runner.parse_qualities("4,2,2.5") == [2, 2.5, 4]
    assert runner.parse_qualities("0-1:0.5") == [0, 0.5, 1]  # below 1: extrapolated qualities
    for bad in ("-1", "9", "a", "3-1", ""):
        with pytest.raises(Exception):
            runner.parse_qualities(bad)


# -- the real command ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny_model_path):
    work = tmp_path_factory.mktemp("eval")
    (work / "imgs").mkdir()
    Image.fromarray(synthetic_photo(64, 96, seed=0)).save(work / "imgs" / "a.png")
    Image.fromarray(synthetic_photo(80, 72, seed=1)).save(work / "imgs" / "b.png")
    r = run_clc("eval", "imgs", "-q", "2,6", "--refs", "3", "--codecs", "jpeg", "--anchors", "vtm,webp",
                "--json", "rd.json", "--plot", "rd.png", "--keep", "clc",
                env_extra={"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(work / "none")}, cwd=work)
    return work, r


def test_eval_json_bpp_equals_real_file_sizes(eval_run, tiny_model_path):
    work, r = eval_run
    assert r.returncode == 0, r.stderr.decode()
    res = json.loads((work / "rd.json").read_text())
    assert set(res["results"]) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
    assert res["quality"] == [2.0, 6.0] and len(res["per_image"]) == 4
    codec = Codec(tiny_model_path, dictionary=False, device="cpu")
    for rec in res["per_image"]:
        src = work / "imgs" / rec["image"]
        w, h = Image.open(src).size
        kept = work / "clc" / f"{src.stem}_q{rec['quality']:g}.clc"
        assert rec["bytes"] == kept.stat().st_size
        assert rec["bpp"] == 8 * kept.stat().st_size / (w * h)
        data = codec.encode(src, rec["quality"], 3)  # the same bytes straight from the API
        assert data == kept.read_bytes()
        decoded, _ = codec.decode_pixels(data)
        original = np.asarray(Image.open(src).convert("RGB"))
        assert rec["psnr-rgb"] == pytest.approx(metrics.psnr(original, decoded), abs=1e-9)
        assert rec["ms-ssim-scales"] < 5  # small images: the documented fallback
    for i, q in enumerate(res["quality"]):
        bpps = [x["bpp"] for x in res["per_image"] if x["quality"] == q]
        assert res["results"]["bpp"][i] == pytest.approx(sum(bpps) / len(bpps))
    jpeg = res["classical"]["jpeg"]
    assert len(jpeg["results"]["bpp"]) == len(classical.CODECS["jpeg"].values)
    rec = jpeg["per_image"][0]
    px = np.asarray(Image.open(work / "imgs" / rec["image"]).convert("RGB"))
    assert rec["bytes"] == len(classical.CODECS["jpeg"].encode(px, int(rec["quality"])))
    assert [row["key"] for row in res["bd_rate"]["rows"]] == ["vtm", "webp", "jpeg"]
    assert res["bd_rate"]["anchors_comparable"] is False


def test_eval_prints_tables_and_writes_plot(eval_run):
    work, r = eval_run
    out = r.stdout.decode()
    assert "quality" in out and "BD-rate vs VTM" in out and "jpeg" in out
    assert "Traceback" not in r.stderr.decode()
    assert (work / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO((work / "rd.png").read_bytes())).size[0] > 800


@pytest.mark.parametrize("args,needle", [
    (["empty"], "no images"),
    (["imgs", "-q", "9"], "outside"),
    (["imgs", "--codecs", "gif"], "unknown codec"),
    (["imgs", "--anchors", "nope"], "unknown anchor"),
    (["imgs", "--json", "rd.json"], "exists"),
    (["missing"], "no such file"),
])
def test_eval_errors_are_one_line(eval_run, tiny_model_path, args, needle):
    work, _ = eval_run
    (work / "empty").mkdir(exist_ok=True)
    r = run_clc("eval", *args, env_extra={"CLC_MODEL": str(tiny_model_path)}, cwd=work)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


KODAK = Path(__import__("os").environ.get("CLC_KODAK_DIR", REPO.parent / "shared" / "data" / "kodak"))


@pytest.mark.skipif(not (KODAK.is_dir() and __import__("os").environ.get("CLC_KODAK_TESTS")),
                    reason="opt-in: CLC_KODAK_TESTS=1 (Kodak at ../shared/data/kodak or $CLC_KODAK_DIR; ~2 min)")
def test_live_webp_reproduces_measured_here_on_kodak():
    """Pillow's libwebp at method 6 writes what cwebp -m 6 wrote for measured_here: same bpp, PSNR, MS-SSIM on all
    24 Kodak images. Checks the whole measurement path (file bytes, 8-bit PSNR per image, MS-SSIM, averaging)."""
    local = json.loads((anchors.DATA / anchors.ALL["local-webp"][0]).read_text())
    images = runner.load_images(runner.find_images([KODAK]))
    codec = classical.CODECS["webp"]
    for q in (0, 50):
        i = local["settings"]["values"].index(q)
        recs = [runner.measure(im.name, im.pixels, d := codec.encode(im.pixels, q), codec.decode(d), q, 0, 0)
                for im in images]
        assert np.mean([r.bpp for r in recs]) == pytest.approx(local["results"]["bpp"][i], rel=2e-3)
        assert np.mean([r.psnr for r in recs]) == pytest.approx(local["results"]["psnr-rgb"][i], abs=0.01)
        assert np.mean([r.msssim for r in recs]) == pytest.approx(local["results"]["ms-ssim-rgb"][i], abs=1e-4)
