"""Bounded decode cost on untrusted files: the pixel limit, entropy-coded strings too short for the size their
header claims, and corrupt-but-checksummed files decoding silently (no numpy warnings, no NaN pixels)."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import clccodec
from clccodec import Codec
from clccodec.decoding.decoder import Decoder, LiteDecoder
from clccodec.defaults import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV
from clccodec.errors import FormatError, PixelLimitError, UsageError
from clccodec.format import container
from clccodec.model.quality import QUALITY_MAX, QUALITY_MIN

from .conftest import assert_one_line_error, run_clc, synthetic_photo


@pytest.fixture(scope="module")
def small_file(tiny_model_path) -> bytes:
    return Codec(tiny_model_path, False, "cpu").encode(synthetic_photo(64, 64, seed=2), quality=3, refs=0)


def claiming(data: bytes, width: int, height: int) -> bytes:
    """The same strings under a header that claims another size (checksums recomputed: the readers see it)."""
    f = container.unpack(data)
    f.width, f.height = width, height
    return container.pack(f)


def test_a_small_file_claiming_48_megapixels_is_refused_at_once(tiny_model_path, small_file, tmp_path):
    bomb = claiming(small_file, 8000, 6000)
    assert len(bomb) < 200
    for decoder in (LiteDecoder(tiny_model_path, False), Codec(tiny_model_path, False, "cpu")):
        t = time.perf_counter()
        with pytest.raises(FormatError, match="hyper-latent's entropy-coded data .* too short for a 8000x6000"):
            decoder.decode_full(bomb)
        assert time.perf_counter() - t < 1.0
    (tmp_path / "bomb.clc").write_bytes(bomb)
    r = run_clc("decode", str(tmp_path / "bomb.clc"), "-o", str(tmp_path / "bomb.png"), "--model",
                str(tiny_model_path), "--dict", "none")
    assert r.returncode == 3 and not (tmp_path / "bomb.png").exists()
    assert_one_line_error(r, "too short for a 8000x6000 image")


def test_the_pixel_limit_refuses_before_any_work(tiny_model_path, small_file, tmp_path, monkeypatch):
    dec = Decoder(tiny_model_path, False, "cpu")
    assert dec.decode_full(small_file, max_pixels=64 * 64).pixels.shape == (64, 64, 3)
    with pytest.raises(PixelLimitError, match=r"64x64 \(4,096 pixels\) is over the decoder's limit of 4,095 "):
        dec.decode_full(small_file, max_pixels=4095)
    with pytest.raises(PixelLimitError):
        Codec(tiny_model_path, False, "cpu").decode_full(small_file, max_pixels=100)
    with pytest.raises(PixelLimitError):
        clccodec.decode(small_file, model=tiny_model_path, dictionary=False, max_pixels=100)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(PixelLimitError, match="limit of 1,000 pixels"):
        dec.decode_full(small_file)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UsageError, match="CLC_MAX_PIXELS must be a whole number"):
        dec.decode_full(small_file)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    src = tmp_path / "a.clc"
    src.write_bytes(small_file)
    args = ("decode", str(src), "-o", str(tmp_path / "a.png"), "--model", str(tiny_model_path), "--dict", "none")
    r = run_clc(*args, "--max-pixels", "4095")
    assert r.returncode == 3 and not (tmp_path / "a.png").exists()
    assert_one_line_error(r, "is over the decoder's limit of 4,095 pixels (raise it with --max-pixels")
    assert run_clc(*args, env_extra={MAX_PIXELS_ENV: "4096"}).returncode == 0
    assert DEFAULT_MAX_PIXELS > 48_000_000  # a 48 MP photo decodes by default; it is the strings that stop a bomb


@pytest.mark.parametrize("value", [0, 32, 255])
def test_flat_images_are_never_refused(shipped_codec, value):
    """The string bound against the files that come closest to it: constant images, every quality, both
    backends (the shipped model's tables: the most probable symbols cost least)."""
    img = np.full((256, 320, 3), value, np.uint8)
    img[::7, ::5] ^= np.uint8(1) if value == 32 else np.uint8(0)  # near-constant for one of them
    lite = LiteDecoder()
    for q in np.linspace(QUALITY_MIN, QUALITY_MAX, 5):
        data = shipped_codec.encode(img, quality=float(q), refs=0)
        assert lite.decode_full(data).pixels.shape == (256, 320, 3)
        assert shipped_codec.decode_full(data).pixels.shape == (256, 320, 3)


def test_corrupt_strings_decode_silently_to_clean_pixels(tiny_model_path, small_file):
    """Garbage that passes every check (checksums recomputed, lengths plausible): pixels or a FormatError, never
    a numpy warning and never NaN-driven values."""
    f = container.unpack(small_file)
    rng = np.random.default_rng(0)
    f.slices = [rng.integers(0, 256, len(s), dtype=np.uint8).tobytes() for s in f.slices]
    f.hyper = rng.integers(0, 256, len(f.hyper), dtype=np.uint8).tobytes()
    data = container.pack(f)
    code = ("import sys, warnings\nwarnings.simplefilter('error')\nfrom clccodec.decoding.decoder import LiteDecoder\n"
            "from clccodec.errors import FormatError\n"
            f"d = LiteDecoder({str(tiny_model_path)!r}, False)\n"
            "try:\n    px = d.decode_full(sys.stdin.buffer.read()).pixels\n    print(px.shape)\n"
            "except FormatError as e:\n    print('refused', e)\n")
    r = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            px = Codec(tiny_model_path, False, "cpu").decode_full(data).pixels
            assert px.dtype == np.uint8 and px.shape == (64, 64, 3)
        except FormatError:
            pass
