"""Alpha: kept losslessly in its own section (format/alpha.py), decoded back to RGBA / LA by both decoders."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from clccodec import Codec, Decoder
from clccodec.errors import FormatError
from clccodec.format import container
from clccodec.format.alpha import pack_alpha, unpack_alpha

from .conftest import run_clc, synthetic_photo


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


def soft_mask(h: int, w: int) -> np.ndarray:
    """A hole, a soft edge and a few noisy samples: every kind of alpha a photo cut-out has."""
    a = np.full((h, w), 255, np.uint8)
    a[h // 4 : h // 2, w // 4 : w // 2] = 0
    a[:, : min(w, 12)] = np.linspace(0, 255, min(w, 12)).astype(np.uint8)
    a[-1, -3:] = (1, 128, 254)[-min(w, 3):]
    return a


@pytest.mark.parametrize("shape", [(1, 1), (1, 57), (33, 1), (40, 56)])
def test_the_alpha_section_round_trips_any_plane(shape):
    rng = np.random.default_rng(0)
    for plane in (rng.integers(0, 256, shape, dtype=np.uint8), soft_mask(*shape), np.zeros(shape, np.uint8)):
        assert np.array_equal(unpack_alpha(pack_alpha(plane), shape[1], shape[0]), plane)


def test_a_damaged_alpha_section_is_a_format_error():
    plane = soft_mask(20, 30)
    good = pack_alpha(plane)
    bad = {"truncated": good[:-4], "trailing bytes": good + b"\0", "unknown method": b"\x07" + good[1:],
           "empty": b"", "not zlib": b"\x01" + b"\xff" * 20,
           "too many samples": b"\x01" + zlib.compress(bytes(20 * 30 + 1)),  # a bomb stops at the plane's size
           "too few samples": b"\x01" + zlib.compress(bytes(20 * 30 - 1))}
    for name, data in bad.items():
        with pytest.raises(FormatError, match="alpha"):
            unpack_alpha(data, 30, 20)
        print(name, "refused")


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_round_trips_exactly_through_both_decoders(codec, tiny_model_path, mode):
    h, w = 40, 56
    alpha = soft_mask(h, w)
    colour = synthetic_photo(h, w)
    im = Image.fromarray(np.dstack([colour, alpha]), "RGBA")
    if mode == "LA":
        im = Image.merge("LA", [im.convert("L"), Image.fromarray(alpha)])
    res = codec.encode_full(im, quality=3, refs=0)
    assert res.notes == []
    info = container.read_info(res.data)
    assert info["mode"] == mode and info["alpha_bytes"] > 0 and info["bytes"] == len(res.data)
    for decoded in (codec.decode(res.data), Decoder(tiny_model_path, False, "cpu").decode(res.data)):
        assert decoded.mode == mode and decoded.size == (w, h)
        assert np.array_equal(np.asarray(decoded.getchannel("A")), alpha)
    # the colour is coded exactly as without alpha: the alpha section is the only difference
    plain = codec.encode(im.convert(mode[:-1]), quality=3, refs=0)
    assert len(res.data) - len(plain) == info["alpha_bytes"] + 4 + 2  # + its CRC, kind byte and length varint


def test_files_without_alpha_do_not_change(codec):
    rgb = synthetic_photo(32, 48)
    opaque = np.dstack([rgb, np.full((32, 48), 255, np.uint8)])
    assert codec.encode(opaque, quality=3, refs=0) == codec.encode(rgb, quality=3, refs=0)
    assert codec.decode(codec.encode(rgb, quality=3, refs=0)).mode == "RGB"


def test_alpha_false_drops_it(codec):
    rgba = np.dstack([synthetic_photo(32, 48), soft_mask(32, 48)])
    data = codec.encode(rgba, quality=3, refs=0, alpha=False)
    assert data == codec.encode(rgba[:, :, :3], quality=3, refs=0)
    assert codec.decode(data).mode == "RGB"


def test_a_size_target_counts_the_alpha_bytes(codec):
    rgba = np.dstack([synthetic_photo(48, 64), soft_mask(48, 64)])
    res = codec.encode_full(rgba, refs=0, target_size=700)
    assert len(res.data) <= 700 and container.read_info(res.data)["alpha_bytes"] > 0


def test_cli_keeps_alpha_and_says_where_an_output_cannot(tmp_path, tiny_model_path):
    alpha = soft_mask(40, 56)
    Image.fromarray(np.dstack([synthetic_photo(40, 56), alpha]), "RGBA").save(tmp_path / "a.png")
    env = {"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(tmp_path / "none")}
    assert run_clc("encode", "a.png", "-o", "a.clc", cwd=tmp_path, env_extra=env).returncode == 0
    assert run_clc("encode", "a.png", "-o", "b.clc", "--no-alpha", cwd=tmp_path, env_extra=env).returncode == 0
    for out in ("a.png", "a.webp", "a.tif"):
        r = run_clc("decode", "a.clc", "-o", f"out-{out}", cwd=tmp_path, env_extra=env)
        assert r.returncode == 0, r.stderr
        im = Image.open(tmp_path / f"out-{out}")
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im.getchannel("A")), alpha), out
    r = run_clc("decode", "a.clc", "-o", "a.jpg", cwd=tmp_path, env_extra=env)
    assert r.returncode == 0 and "[alpha dropped: JPEG has none]" in r.stderr.decode()
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert run_clc("decode", "b.clc", "-o", "b.png", cwd=tmp_path, env_extra=env).returncode == 0
    assert Image.open(tmp_path / "b.png").mode == "RGB"
