"""Near-lossless and lossless files: a residual layer over the exact lossy pixels keeps every sample within ±N."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clccodec import Codec, Decoder
from clccodec.errors import FormatError, TruncatedError, UsageError
from clccodec.format import container
from clccodec.model import residual
from clccodec.model.residual import apply_residual, pack_residual

from .conftest import run_clc, synthetic_photo


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


def noisy(source: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(source + rng.normal(0, sigma, source.shape).round(), 0, 255).astype(np.uint8)


def test_the_tables_are_exact_integer_cdfs():
    cdfs, lengths, offsets = residual.tables()
    assert len(cdfs) == residual.CLASSES
    for cdf, n, off in zip(cdfs, lengths, offsets):
        freq = np.diff(cdf)
        assert len(cdf) == n and cdf[0] == 0 and cdf[-1] == 1 << 16 and freq.min() >= 1 and off == -((n - 2) // 2)
    assert lengths == sorted(lengths)  # wider classes cover more values


@pytest.mark.parametrize("near", [0, 1, 2, 5])
@pytest.mark.parametrize("gray", [False, True])
def test_every_sample_is_within_the_bound(near, gray):
    source = synthetic_photo(37, 53)
    if gray:
        source = np.repeat(source[:, :, :1], 3, axis=2)
    base = noisy(source, 6.0)
    section = pack_residual(source, base, gray, near)
    assert section == pack_residual(source, base, gray, near)  # deterministic
    out = apply_residual(base, section, gray)
    assert out.dtype == np.uint8 and out.shape == source.shape
    assert np.abs(out.astype(int) - source).max() <= near
    if near == 0:
        assert np.array_equal(out, source)


def test_a_damaged_residual_is_a_format_error():
    source = synthetic_photo(32, 48)
    base = noisy(source, 4.0)
    good = pack_residual(source, base, False, 1)
    for bad in (good[:3], b"\x02" + good[1:], good[:1] + bytes([99]) + good[2:], good[:3] + b"\x01" + good[4:],
                good[:4] + b"\xff\xff\xff\xff\xff" + good[9:], good[: len(good) // 2]):
        with pytest.raises(FormatError):
            apply_residual(base, bad, False)


@pytest.mark.parametrize("near", [0, 2])
def test_codec_files_decode_within_the_bound_on_both_decoders(codec, tiny_model_path, near):
    source = synthetic_photo(40, 56)
    alpha = np.full((40, 56), 255, np.uint8)
    alpha[5:15, 5:25] = 3
    res = codec.encode_full(np.dstack([source, alpha]), 3, 0, reconstruct=True, near_lossless=near)
    info = container.read_info(res.data)
    assert info["near_lossless"] == near and info["residual_bytes"] > 0 and info["bytes"] == len(res.data)
    for decoded in (codec.decode_full(res.data), Decoder(tiny_model_path, False, "cpu").decode_full(res.data)):
        assert np.abs(decoded.pixels.astype(int) - source).max() <= near
        assert np.array_equal(decoded.pixels, res.reconstruction) and np.array_equal(decoded.alpha, alpha)


def test_lossless_grayscale(codec):
    gray = synthetic_photo(33, 47)[:, :, 1]
    data = codec.encode(Image.fromarray(gray, "L"), 2, 0, near_lossless=0)
    im = codec.decode(data)
    assert im.mode == "L" and np.array_equal(np.asarray(im), gray)


def test_a_truncated_residual_leaves_the_lossy_layer(codec):
    source = synthetic_photo(40, 56)
    data = codec.encode(source, 3, 0, near_lossless=1)
    lossy = codec.decode_full(codec.encode(source, 3, 0), exact=True).pixels
    cut = data[:-10]
    with pytest.raises(TruncatedError):
        codec.decode_full(cut)
    r = codec.decode_full(cut, partial=True, exact=True)
    assert r.truncated and np.array_equal(r.pixels, lossy)


def test_the_container_keeps_the_residual_after_the_slices():
    f = container.ClcFile(8, 8, b"\0" * 4, 3.0, hyper=b"\0" * 8, slices=[b"\1" * 8, b"\2" * 8],
                          residual=b"\x01\x00\x10\x03rest")
    data = container.pack(f)
    g = container.unpack(data)
    assert g.residual == f.residual and g.slices == f.slices and data[4] & container.FLAG_RESIDUAL
    assert data.index(b"\x01\x00\x10\x03rest") > data.index(b"\2" * 8)  # after the last slice
    with pytest.raises(ValueError, match="every slice"):
        container.pack(container.ClcFile(8, 8, b"\0" * 4, 3.0, hyper=b"\0" * 8, slices=[b"\1" * 8], slices_total=2,
                                         residual=b"x"))
    with pytest.raises(ValueError, match="version 1"):
        container.pack(f, version=1)


@pytest.mark.parametrize("kw, message", [
    (dict(near_lossless=33), "near_lossless must be a whole number between 0 and 32"),
    (dict(near_lossless=1, slices=1), "no target and no slices"),
    (dict(near_lossless=0, target_bpp=2.0), "no target and no slices"),
])
def test_bad_near_lossless_arguments(codec, kw, message):
    with pytest.raises(UsageError, match=message):
        codec.encode(synthetic_photo(16, 16), **kw)


def test_cli_lossless_round_trip(tmp_path, tiny_model_path):
    source = synthetic_photo(40, 56)
    Image.fromarray(source).save(tmp_path / "a.png")
    env = {"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(tmp_path / "none")}
    assert run_clc("encode", "a.png", "--lossless", cwd=tmp_path, env_extra=env).returncode == 0
    assert run_clc("decode", "a.clc", "-o", "b.png", cwd=tmp_path, env_extra=env).returncode == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), source)
    info = json.loads(run_clc("info", "a.clc", "--json", cwd=tmp_path, env_extra=env).stdout)
    assert info["near_lossless"] == 0 and info["quality"] == 8.0  # the lossy layer's default with a residual
    assert "residual   │ lossless" in run_clc("info", "a.clc", cwd=tmp_path, env_extra=env).stdout.decode()
    r = run_clc("encode", "a.png", "-o", "c.clc", "--lossless", "--near-lossless", "2", cwd=tmp_path, env_extra=env)
    assert r.returncode == 2 and "contradict" in r.stderr.decode()


def test_a_residual_too_short_for_its_parameters_is_refused_by_the_reader():
    f = container.ClcFile(8, 8, b"\0" * 4, 3.0, hyper=b"\0" * 8, slices=[b"\1" * 8], residual=b"\x01")
    with pytest.raises(FormatError, match="residual section too short"):
        container.read_info(container.pack(f))


def test_pillow_saves_near_lossless_and_the_cli_says_when_a_residual_is_cut(tmp_path, tiny_model_path):
    import clccodec.pillow  # noqa: F401

    source = synthetic_photo(40, 56)
    Image.fromarray(source).save(tmp_path / "a.clc", near_lossless=1, model=tiny_model_path, dictionary=False,
                                 device="cpu")
    data = (tmp_path / "a.clc").read_bytes()
    assert container.read_info(data)["near_lossless"] == 1
    (tmp_path / "cut.clc").write_bytes(data[:-20])
    env = {"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(tmp_path / "none")}
    r = run_clc("decode", "cut.clc", "-o", "cut.png", "--partial", cwd=tmp_path, env_extra=env)
    assert r.returncode == 0 and "[truncated file: the lossy layer only, its residual is missing]" in r.stderr.decode()
