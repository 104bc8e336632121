"""Round trips through the real API with a tiny random model: exactness, determinism, bpp, image kinds."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import clccodec
from clccodec import Codec, read_info
from clccodec.format import container
from clccodec.errors import ModelMismatchError, UsageError
from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
from clccodec.model.weights import prepare_for_export, save_weights

from .conftest import synthetic_photo

DECODE_SCRIPT = """
import sys, json, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from clccodec import Codec
pixels, gray = Codec(sys.argv[1], dictionary=False, device="cpu").decode_pixels(open(sys.argv[2], "rb").read(),
                                                                                exact=True)
np.save(sys.argv[4], pixels)
"""


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


def decode_in_fresh_process(model_path, clc_path, out_npy, threads):
    subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(model_path), str(clc_path), str(threads),
                    str(out_npy)], check=True, timeout=300)
    return np.load(out_npy)


def test_fresh_process_decode_matches_encoder_reconstruction(codec, tiny_model_path, tmp_path):
    img = synthetic_photo(100, 150, seed=3)
    torch.set_num_threads(2)
    res = codec.encode_full(img, quality=4.5, refs=0, reconstruct=True, exact=True)
    (tmp_path / "a.clc").write_bytes(res.data)
    for threads in (1, 2):
        decoded = decode_in_fresh_process(tiny_model_path, tmp_path / "a.clc", tmp_path / f"d{threads}.npy",
                                          threads)
        assert decoded.shape == (100, 150, 3)
        assert np.array_equal(decoded, res.reconstruction), f"decode with {threads} thread(s) differs"


def test_repeated_encodes_give_identical_bytes(codec):
    img = synthetic_photo(64, 80, seed=1)
    first = codec.encode(img, quality=2.0, refs=0)
    torch.set_num_threads(1)
    try:
        assert codec.encode(img, quality=2.0, refs=0) == first
    finally:
        torch.set_num_threads(2)
    assert codec.encode(img, quality=2.0, refs=0) == first


def test_quality_changes_the_rate(codec):
    img = synthetic_photo(128, 128, seed=2)
    sizes = [len(codec.encode(img, quality=q, refs=0)) for q in (1, 4.5, 8)]
    assert sizes[0] != sizes[2]


def test_qualities_below_the_first_level_extrapolate_the_ladder(codec):
    from clccodec.model.quality import lambda_for_quality
    from clccodec.model.quality import LAMBDAS, QUALITY_MIN, lambda_at

    # the line through levels 1 and 2, continued: lambda(0) = lambda1^2 / lambda2, in the float and scalar twins
    assert lambda_at(QUALITY_MIN) == pytest.approx(LAMBDAS[0] ** 2 / LAMBDAS[1], rel=1e-12)
    assert float(lambda_for_quality(torch.tensor([0.5]))) == pytest.approx(lambda_at(0.5), rel=1e-6)
    assert lambda_at(0.5) < lambda_at(1.0)
    img = synthetic_photo(64, 96, seed=4)
    res = codec.encode_full(img, quality=0.25, refs=0, reconstruct=True, exact=True)
    assert read_info(res.data)["quality"] == 0.25
    assert np.array_equal(codec.decode_pixels(res.data, exact=True)[0], res.reconstruction)
    with pytest.raises(UsageError, match="between 0 and 8"):
        codec.encode(img, quality=-0.5)


def test_bpp_counts_every_byte(codec):
    img = synthetic_photo(70, 90)
    data = codec.encode(img, quality=3, refs=0)
    info = read_info(data)
    assert info["bytes"] == len(data)
    assert info["bpp"] == pytest.approx(8 * len(data) / (70 * 90))
    assert info["hyper_bytes"] + sum(info["slice_bytes"]) < len(data)  # the header is counted too


@pytest.mark.parametrize("size", [(1, 1), (3, 200), (65, 33), (64, 64)])
def test_any_size_round_trips(codec, size):
    h, w = size
    img = synthetic_photo(h, w)
    res = codec.encode_full(img, quality=3, refs=0, reconstruct=True)
    out, gray = codec.decode_pixels(res.data)
    assert out.shape == (h, w, 3) and not gray
    assert np.array_equal(out, res.reconstruction)  # the fast synthesis, same process: the same pixels
    exact = codec.encode_full(img, quality=3, refs=0, reconstruct=True, exact=True)
    assert exact.data == res.data and np.array_equal(codec.decode_pixels(res.data, exact=True)[0], exact.reconstruction)


def test_grayscale_decodes_to_grayscale(codec):
    g = synthetic_photo(40, 56)[:, :, 1]
    data = codec.encode(Image.fromarray(g, "L"), quality=5, refs=0)
    assert read_info(data)["mode"] == "L"
    im = codec.decode(data)
    assert im.mode == "L" and im.size == (56, 40)


def test_bad_quality_is_a_usage_error(codec):
    with pytest.raises(UsageError, match="quality"):
        codec.encode(synthetic_photo(16, 16), quality=9)
    with pytest.raises(UsageError, match="quality"):
        codec.encode(synthetic_photo(16, 16), quality=float("nan"))


def test_file_from_another_model_is_refused(codec, tmp_path):
    torch.manual_seed(99)
    other = CLCModel(TINY)
    prepare_for_export(other)
    save_weights(other, tmp_path / "other.pt")
    data = Codec(tmp_path / "other.pt", dictionary=False, device="cpu").encode(synthetic_photo(32, 32), 3, 0)
    with pytest.raises(ModelMismatchError, match="needs model"):
        codec.decode(data)


def test_module_level_api(tiny_model_path, tmp_path, photo_png):
    dst = tmp_path / "p.clc"
    n = clccodec.encode_file(photo_png, dst, 3, model=tiny_model_path, dictionary=False, device="cpu")
    assert dst.stat().st_size == n
    clccodec.decode_file(dst, tmp_path / "p.png", model=tiny_model_path, dictionary=False, device="cpu")
    assert Image.open(tmp_path / "p.png").size == Image.open(photo_png).size


def test_decode_ignores_onednn_and_thread_count(codec):
    """CPU proxies for 'another machine': other kernels and reduction orders must give the same exact pixels."""
    img = synthetic_photo(96, 128, seed=5)
    res = codec.encode_full(img, quality=6, refs=0, reconstruct=True, exact=True)
    try:
        for onednn in (False, True):
            for threads in (1, 2):
                torch.backends.mkldnn.enabled = onednn
                torch.set_num_threads(threads)
                pixels, _ = codec.decode_pixels(res.data, exact=True)
                assert np.array_equal(pixels, res.reconstruction), (onednn, threads)
    finally:
        torch.backends.mkldnn.enabled = True
        torch.set_num_threads(2)


def test_weights_format_1_and_2_are_the_same_model(tiny_model_path, tmp_path):
    """Format 2 stores the probability path's convolution weights as int16 grid integers: same tensors, same
    model id, same bytes as the format-1 file (float32) that older releases wrote and this one still reads."""
    from clccodec.model.weights import load_weights

    blob = torch.load(tiny_model_path, weights_only=True)
    assert blob["format"] == "clc-weights/2" and blob["grids"]
    assert all(blob["state"][k].dtype == torch.int16 for k in blob["grids"])
    v1 = {"format": "clc-weights/1", "config": blob["config"], "meta": blob["meta"],
          "state": {k: (v.float() / 2 ** blob["grids"][k] if k in blob["grids"] else v) for k, v in blob["state"].items()}}
    torch.save(v1, tmp_path / "v1.pt")
    a, b = load_weights(tiny_model_path), load_weights(tmp_path / "v1.pt")
    assert a.model_id == b.model_id
    assert (tmp_path / "v1.pt").stat().st_size > tiny_model_path.stat().st_size
    img = synthetic_photo(48, 64, seed=2)
    enc = [Codec(p, dictionary=False, device="cpu").encode(img, 4.5, 0) for p in (tiny_model_path, tmp_path / "v1.pt")]
    assert enc[0] == enc[1]


def rate_scaled_model(path, scales: float = 0.3, seed: int = 7):
    """A tiny exported model with rate_scales, its log-scales random (std `scales`) or 0 (every scale 1)."""
    torch.manual_seed(seed)
    model = CLCModel(dataclasses.replace(TINY, rate_scales=True))
    with torch.no_grad():
        model.log_scale_a.normal_(0, scales)
        model.log_scale_s.normal_(0, scales)
    prepare_for_export(model)
    save_weights(model, path)
    return path


def test_rate_scales_at_one_code_exactly_like_the_model_without_them(tmp_path):
    from clccodec.model.weights import load_weights

    torch.manual_seed(1)
    plain = CLCModel(TINY)
    prepare_for_export(plain)
    scaled = plain.reconfigured(rate_scales=True).eval()
    x = torch.rand(1, 3, 128, 192)
    for exact in (False, True):
        a, b = (m.compress(x, 3.7, reconstruct=True, exact=exact) for m in (plain, scaled))
        assert a[0] == b[0] and torch.equal(a[1], b[1])
    save_weights(scaled, tmp_path / "s.pt")
    assert load_weights(tmp_path / "s.pt").compress(x, 3.7)[0] == a[0]


def test_rate_scaled_files_round_trip_at_any_quality(tmp_path):
    """g_a scaled for the quality at encode, g_s at decode (the quality read from the file): the decoders
    (exact, fast, torch-free) give the encoder's pixels, and the scales do change the file."""
    from clccodec.decoding.decoder import LiteDecoder

    path = rate_scaled_model(tmp_path / "rs.pt")
    codec = Codec(path, dictionary=False, device="cpu")
    img = synthetic_photo(100, 150, seed=4)
    for q in (1.0, 3.7, 7.25):
        exact = codec.encode_full(img, quality=q, refs=0, reconstruct=True, exact=True)
        fast = codec.encode_full(img, quality=q, refs=0, reconstruct=True)
        assert exact.data == fast.data
        assert np.array_equal(codec.decode_pixels(exact.data, exact=True)[0], exact.reconstruction)
        assert np.array_equal(codec.decode_pixels(exact.data)[0], fast.reconstruction)
        lite_pixels = LiteDecoder(path, False).decode_full(exact.data).pixels
        assert np.abs(lite_pixels.astype(int) - fast.reconstruction).max() <= 1
        assert np.abs(fast.reconstruction.astype(int) - exact.reconstruction).max() <= 1
    unscaled = Codec(rate_scaled_model(tmp_path / "one.pt", scales=0.0), dictionary=False, device="cpu")
    assert container.unpack(unscaled.encode(img, quality=q, refs=0)).slices != container.unpack(exact.data).slices


def test_rate_scaled_analysis_is_the_training_network():
    """The coding-time g_a (channels_last, the scales folded into each GDN) against the module with the scales
    applied after each GDN, at a fractional quality; the plain g_a without a quality."""
    torch.manual_seed(3)
    model = CLCModel(dataclasses.replace(TINY, rate_scales=True)).eval()
    with torch.no_grad():
        model.log_scale_a.normal_(0, 0.3)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        fast, plain = model.analyse(x, 2.6), model.analyse(x)
        assert torch.allclose(plain, model.g_a(x), atol=1e-5)
    with torch.enable_grad():
        trained = model._scaled(model.g_a, x, model.log_scale_a, torch.tensor([2.6])).detach()
    assert torch.allclose(fast, trained, atol=1e-5)
    assert (fast - plain).abs().max() > 1e-2
