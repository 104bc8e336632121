"""The torch-free decoder (lite.py): the same symbols as the torch decoder, bit for bit; pixels within the fast
synthesis's last bit; the same answers to bad input; and no torch import on the CLI's decode path."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from clccodec.format import container
from clccodec.decoding import numpy_backend as lite
from clccodec.decoding.decoder import LiteDecoder, gpu_may_be_present
from clccodec.api import Codec
from clccodec.errors import FormatError, ModelError, ReferenceIndexError
from clccodec.io.images import pad_to_multiple, to_tensor
from clccodec.model import bands
from clccodec.model import ptfile
from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
from clccodec.model.rans import padded
from clccodec.model.weights import load_weights, prepare_for_export, save_weights

from .conftest import synthetic_photo


def probe_modules(*args: str, names: tuple[str, ...]) -> list[str]:
    """Which of these modules a fresh `clc ARGS` process had imported when it ended."""
    code = ("import json, runpy, sys\nsys.argv = ['clc', *json.loads(sys.argv[1])]\ntry:\n"
            "    runpy.run_module('clccodec', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, timeout=120)
    return json.loads(r.stderr.decode().strip().splitlines()[-1])


def export(tmp_path, cfg=TINY, seed=7):
    torch.manual_seed(seed)
    m = CLCModel(cfg)
    with torch.no_grad():  # random weights with some spread, so every part of the path matters
        for name, p in m.named_parameters():
            if name.startswith(("clm.", "entropy.param_nets", "entropy.lrp_nets", "h_s.")) and p.dim() > 1:
                p.mul_(4)
            if name.startswith("log_scale_"):  # rate_scales: every scale 1 at init
                p.normal_(0, 0.3)
    prepare_for_export(m)
    path = tmp_path / f"{cfg.name}-{cfg.query_slices}.pt"
    save_weights(m, path)
    return path


def torch_latents(m: CLCModel, streams, size, codes):
    """What CLCModel.decompress feeds its synthesis: y_hat_s and the final y_a."""
    with torch.no_grad():
        z_shape = m.latent_shape(*size)
        z_hat = m.entropy_bottleneck.decompress([padded(streams.hyper, m.cfg.Nz * z_shape[0] * z_shape[1])], z_shape)
        feat, y_a, late = m._decoder_context(z_hat.double(), m._tokens(codes))
        return m.entropy.decompress(streams.slices, feat, y_a, late, bands.latent_band(feat.shape[-1]))


@pytest.mark.parametrize("c_in,c_out,h,w", [(6, 5, 7, 4), (4, 2, 1, 9)])
def test_transposed_convolution_by_phases_is_torchs(monkeypatch, c_in, c_out, h, w):
    """deconv2d (each output phase from its own taps, written in place) and the 3x3 sub-pixel form: g_s's 5x5
    stride-2 transposed convolution, to float32 rounding, also over several row blocks."""
    from clccodec.model.subpixel import phase_kernels, subpixel_kernel

    rng = np.random.default_rng(3)
    x = rng.normal(size=(c_in, h, w)).astype(np.float32)
    wt = rng.normal(size=(c_in, c_out, 5, 5)).astype(np.float32)
    b = rng.normal(size=c_out).astype(np.float32)
    want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x)[None], torch.from_numpy(wt), torch.from_numpy(b),
                                                stride=2, padding=2, output_padding=1)[0].numpy()
    assert np.allclose(lite.deconv2d(x, phase_kernels(wt), b), want, atol=1e-4)
    assert np.allclose(lite.pixel_shuffle(lite.conv2d(x, *subpixel_kernel(wt, b))), want, atol=1e-4)
    monkeypatch.setattr(lite, "BLOCK_BYTES", 1)  # one row per block
    assert np.allclose(lite.deconv2d(x, phase_kernels(wt), b), want, atol=1e-4)


def test_weights_read_without_torch_are_the_torch_loaders_tensors(tmp_path):
    path = export(tmp_path)
    blob = ptfile.load(path)
    ref = torch.load(path, map_location="cpu", weights_only=True)
    assert blob["config"] == ref["config"] and blob["grids"] == ref["grids"]
    assert blob["state"].keys() == ref["state"].keys()
    for k, t in ref["state"].items():
        assert np.array_equal(blob["state"][k], t.numpy()) and blob["state"][k].dtype == t.numpy().dtype, k
    assert lite.NumpyModel.load(path).model_id == load_weights(path).model_id


def test_shipped_model_id_without_torch(shipped_codec):
    assert LiteDecoder().model_id == shipped_codec.model_id


@pytest.mark.parametrize("query_slices,null_prior,refs,band,rate_scales", [
    (0, False, 0, None, False), (0, True, 3, None, False), (1, True, 2, None, True), (1, True, 3, 8, False)])
def test_the_same_latents_bit_for_bit_and_pixels_within_the_fast_bound(tmp_path, monkeypatch, query_slices,
                                                                        null_prior, refs, band, rate_scales):
    """Latents equal to the torch decoder's (the probability path is exact in both), with or without references,
    a late query, and band by band; the fast synthesis agrees with torch's to float32 rounding (with rate scales
    too)."""
    cfg = dataclasses.replace(TINY, query_slices=query_slices, null_prior=null_prior, rate_scales=rate_scales)
    path = export(tmp_path, cfg)
    m = load_weights(path)
    lm = lite.NumpyModel.load(path)
    x = pad_to_multiple(to_tensor(synthetic_photo(150, 200, seed=3)), 64)
    codes = torch.randint(-90, 90, (refs, cfg.ref_channels, 16, 16), dtype=torch.int8) if refs else None
    streams, _ = m.compress(x, 4.5, codes)
    if band:
        monkeypatch.setattr(bands, "LATENT_BAND", band)  # 4-row bands of a 4-wide latent
    y_t, a_t = torch_latents(m, streams, (150, 200), codes)
    tokens = None
    if refs:
        tokens = (codes.numpy().astype(np.float64) / 16).transpose(0, 2, 3, 1).reshape(-1, cfg.ref_channels)
    y_l, a_l = lm.decode_latents(streams, (150, 200), tokens)
    assert np.array_equal(y_l, y_t[0].numpy()) and np.array_equal(a_l, a_t[0].numpy())
    with torch.no_grad():
        x_t = m.decompress(streams, (150, 200), 4.5, codes)[0].numpy()
    x_l = lm.reconstruct(y_l, a_l, 4.5)
    assert x_l.shape == x_t.shape and np.abs(x_l - x_t).max() < 1e-4


def test_shipped_model_decodes_like_the_torch_decoder(shipped_codec):
    """Real weights, references from the default dictionary: pixels within one level of the torch fast
    decoder and of the exact one, the same PSNR to 0.01 dB."""
    img = synthetic_photo(160, 224, seed=5)
    data = shipped_codec.encode(img, quality=4, refs=3, fallback=False)
    assert container.unpack(data).num_refs == 3
    r = LiteDecoder().decode_full(data)
    fast = shipped_codec.decode_full(data)
    exact = shipped_codec.decode_full(data, exact=True)

    def psnr(a):
        return 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - img) ** 2))

    for other in (fast.pixels, exact.pixels):
        assert np.abs(r.pixels.astype(int) - other.astype(int)).max() <= 1
        assert abs(psnr(r.pixels) - psnr(other)) < 0.01
    assert (r.slices_used, r.slices_total, r.grayscale, r.truncated) == (5, 5, False, False)


def test_what_it_does_not_do_goes_to_torch(tiny_model_path):
    """--exact and files with missing slices: the torch decoder's own results."""
    codec = Codec(tiny_model_path, False, "cpu")
    dec = LiteDecoder(tiny_model_path, False)
    full = codec.encode(synthetic_photo(64, 96, seed=2), quality=3, refs=0)
    preview = codec.encode(synthetic_photo(64, 96, seed=2), quality=3, refs=0, slices=1)
    assert np.array_equal(dec.decode_full(full, exact=True).pixels, codec.decode_full(full, exact=True).pixels)
    r = dec.decode_full(preview)
    assert r.slices_used == 1 and np.array_equal(r.pixels, codec.decode_full(preview).pixels)
    assert np.abs(dec.decode_full(full).pixels.astype(int) - codec.decode_full(full).pixels).max() <= 1


def test_bad_input_gets_the_torch_decoders_errors(tiny_model_path, tmp_path):
    codec = Codec(tiny_model_path, False, "cpu")
    data = codec.encode(synthetic_photo(64, 64), quality=3, refs=0)
    f = container.unpack(data)
    f.ref_indices, f.dictionary_id = [10**6], b"\x01" * len(f.dictionary_id)
    from clccodec.errors import DictionaryError

    with pytest.raises(DictionaryError, match="none is loaded"):
        LiteDecoder(tiny_model_path, False).decode_full(container.pack(f))
    other = export(tmp_path, seed=99)
    with pytest.raises(Exception) as e1:
        LiteDecoder(other, False).decode_full(data)
    with pytest.raises(Exception) as e2:
        Codec(other, False, "cpu").decode_full(data)
    assert type(e1.value) is type(e2.value) and str(e1.value) == str(e2.value)
    assert "model" in str(e1.value)


def test_a_reference_index_outside_the_dictionary_is_a_corrupt_file(shipped_codec):
    data = shipped_codec.encode(synthetic_photo(64, 64), quality=3, refs=1, fallback=False)
    f = container.unpack(data)
    f.ref_indices = [10**6]
    with pytest.raises(ReferenceIndexError, match="outside dictionary"):
        LiteDecoder().decode_full(container.pack(f))


def test_a_weights_file_that_would_run_code_is_refused(tmp_path):
    """Like torch's weights_only load: globals outside a weights file's vocabulary are never resolved."""

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["true"],))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"format": "clc-weights/2", "x": Evil()}, protocol=2))
    path = tmp_path / "evil.pt"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelError, match="cannot read model weights"):
        lite.NumpyModel.load(path)
    with pytest.raises(ModelError, match="not found"):
        lite.NumpyModel.load(tmp_path / "missing.pt")


@pytest.mark.skipif(gpu_may_be_present(), reason="with a GPU, --device auto decodes through torch")
def test_cli_decode_imports_no_torch(tmp_path, shipped_codec):
    src = tmp_path / "a.clc"
    src.write_bytes(shipped_codec.encode(synthetic_photo(64, 96), quality=3, refs=3))
    # compressai: only its rANS extension, under the package stub of model/_compressai.py (its __init__, which
    # imports torch, never runs, nor do its entropy models)
    heavy = ("torch", "compressai.entropy_models", "faiss", "sklearn")
    assert probe_modules("decode", str(src), "-o", str(tmp_path / "a.png"), "--quiet", names=heavy) == []
    assert (tmp_path / "a.png").stat().st_size > 0
    r = subprocess.run([sys.executable, "-m", "clccodec", "decode", str(src), "-o", str(tmp_path / "b.png"),
                        "--quiet", "--exact"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()  # --exact goes through torch: the exact decoder's pixels
    from PIL import Image

    exact = shipped_codec.decode_full(src.read_bytes(), exact=True).pixels
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png").convert("RGB")), exact)


def test_the_package_exposes_it_without_importing_torch():
    code = ("import sys, clccodec\nd = clccodec.LiteDecoder\nassert d.__module__ == 'clccodec.decoding.decoder'\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nassert 'LiteDecoder' in dir(clccodec)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()


def test_a_tensor_view_beyond_its_storage_is_refused(tmp_path):
    """as_strided would read whatever memory a hostile size or stride points at: the reader checks the view."""
    path = export(tmp_path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in entries if "/data/" in n)
    entries[key] = entries[key][:8]  # the storage shrinks under its tensor
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    with pytest.raises(ModelError, match="cannot read model weights"):
        lite.NumpyModel.load(bad)


def test_grayscale_and_banded_synthesis_and_corrupt_strings(tiny_model_path, monkeypatch):
    codec = Codec(tiny_model_path, False, "cpu")
    dec = LiteDecoder(tiny_model_path, False)
    gray = np.repeat(synthetic_photo(70, 90, seed=4)[:, :, :1], 3, axis=2)
    data = codec.encode(gray, quality=5, refs=0)
    whole = dec.decode_full(data)
    assert whole.grayscale == codec.decode_full(data).grayscale
    monkeypatch.setattr(bands, "FAST_SYNTHESIS_BAND", 64 * 64)  # 4-latent-row bands, halo 3
    monkeypatch.setattr(bands, "SYNTHESIS_MIN_ROWS", 64)
    assert np.abs(dec.decode_full(data).pixels.astype(int) - whole.pixels).max() <= 1
    f = container.unpack(data)
    for i in range(len(f.slices)):  # garbage in every slice string: a picture or a FormatError
        f.slices[i] = bytes(255 - b for b in f.slices[i]) or b"\xff"
    try:
        r = dec.decode_full(container.pack(f))
        assert r.pixels.shape == whole.pixels.shape
    except FormatError:
        pass


@pytest.mark.parametrize("param_layers", [2, 4])
def test_the_numpy_backend_follows_the_models_layer_list(tmp_path, param_layers):
    """Another layer count in the config (model/layout.py): the numpy backend builds the same networks from the
    config and the state dict's names, and decodes the torch decoder's latents bit for bit."""
    cfg = dataclasses.replace(TINY, name=f"tiny-p{param_layers}", param_layers=param_layers)
    path = export(tmp_path, cfg)
    m, lm = load_weights(path), lite.NumpyModel.load(path)
    assert len(lm.param_nets[0]) == len(m.entropy.param_nets[0]) == 2 * param_layers - 1
    x = pad_to_multiple(to_tensor(synthetic_photo(70, 90, seed=5)), 64)
    streams, _ = m.compress(x, 3.0)
    y_t, a_t = torch_latents(m, streams, (70, 90), None)
    y_l, a_l = lm.decode_latents(streams, (70, 90), None)
    assert np.array_equal(y_l, y_t[0].numpy()) and np.array_equal(a_l, a_t[0].numpy())
    assert LiteDecoder(path, False).model_id == container.unpack(Codec(path, False, "cpu").encode(
        synthetic_photo(40, 40), refs=0)).model_id
