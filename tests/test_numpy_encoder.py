"""The torch-free encoder (encoding/numpy_encoder.py) and the Encoder that picks it (encoding/backends.py): the torch
encoder's analysis up to float rounding, the same references and latents, files both decoders read, the torch
encoder for everything it does not do, and no torch import on the CLI's default encode."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compressai.layers import GDN
from PIL import Image

from clccodec.api import Codec, Decoder
from clccodec.defaults import default_model_path
from clccodec.decoding import numpy_backend as lite
from clccodec.dictionary import features, retrieval
from clccodec.encoding import numpy_encoder as npe
from clccodec.encoding.backends import Encoder
from clccodec.encoding.ratecontrol import Target
from clccodec.errors import UsageError
from clccodec.format import container
from clccodec.io.images import load_image, pad_to_multiple, to_tensor
from clccodec.model import bands
from clccodec.model.config import TINY
from clccodec.model.network import CLCModel
from clccodec.model.synthesis import gdn_parameters
from clccodec.model.weights import prepare_for_export, save_weights

from .conftest import run_clc, synthetic_photo
from .test_lite import probe_modules


def test_kernels_are_torchs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 14, 10)).astype(np.float32)
    w = rng.normal(size=(9, 6, 5, 5)).astype(np.float32)
    b = rng.normal(size=9).astype(np.float32)
    for xs in (x, x[:, :13, :9]):  # (odd sizes: a downscaled query view's)
        want = F.conv2d(torch.from_numpy(xs)[None], torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=2)[0]
        assert np.allclose(npe.conv2d_stride2(xs, w, b), want.numpy(), atol=1e-4)
    for h, wd in ((7, 4), (5, 5), (14, 10), (3, 9)):  # area downscaling by ratios that do not divide, and none
        want = F.interpolate(torch.from_numpy(x)[None], size=(h, wd), mode="area")[0].numpy()
        assert np.allclose(npe.area_resize(x, h, wd), want, atol=1e-6)

    g = GDN(6)
    with torch.no_grad():
        g.beta.add_(torch.rand(6))
        g.gamma.add_(0.1 * torch.rand(6, 6))
    gamma_t, beta = gdn_parameters(g, torch.device("cpu"))
    with torch.no_grad():
        want = g(torch.from_numpy(x)[None])[0].numpy()
    assert np.allclose(npe.gdn(x.copy(), gamma_t.T.numpy(), beta.numpy()), want, rtol=1e-5, atol=1e-6)

    for shape in ((6, 7, 5), (6, 2, 3), (6, 12, 8)):  # cells that do not divide (and overlap below 4 x 4)
        y = rng.normal(size=shape).astype(np.float32)
        want = features.spp(torch.from_numpy(y)[None]).numpy()
        assert np.allclose(npe.spp(y), want, atol=1e-6)


def export(tmp_path, cfg) -> str:
    torch.manual_seed(7)
    m = CLCModel(cfg)
    with torch.no_grad():  # per-channel gains and rate scales as trained ones are (not one value for all)
        m.log_gain.add_(torch.randn_like(m.log_gain) * 0.2)
        if cfg.rate_scales:
            m.log_scale_a.normal_(0, 0.1)
    prepare_for_export(m)
    path = tmp_path / "m.pt"
    save_weights(m, path)
    return path


@pytest.mark.parametrize("rate_scales,banded,onnx", [(False, False, True), (True, False, True), (True, True, True),
                                                     (True, False, False), (True, True, False)])
def test_the_analysis_is_the_torch_encoders(tmp_path, monkeypatch, rate_scales, banded, onnx):
    """g_a (plain and at a quality; in ONNX Runtime or in numpy), the gains and h_a: torch's values to float32
    rounding, also band by band and g_a tile by tile, head and tail (as for very large images)."""
    if banded:  # 64-row bands of g_a, 4-row bands of h_a: three and two bands here; g_a's layers on 64 x 64 tiles
        monkeypatch.setattr(bands, "PIXEL_BAND", 64 * 256)
        monkeypatch.setattr(bands, "LATENT_BAND", 4 * 16)
        monkeypatch.setattr(npe, "WHOLE_ANALYSIS", 0)
        monkeypatch.setattr(npe, "HEAD_TILE", 64)
        monkeypatch.setattr(npe, "TAIL_TILE", 16)
    path = export(tmp_path, dataclasses.replace(TINY, rate_scales=rate_scales))
    m = Codec(path, False, "cpu").model
    a = npe.NumpyAnalysis(lite.NumpyModel.load(path, encoder=True), onnx=onnx)
    assert (a.ort is not None) == onnx
    pixels = synthetic_photo(150, 200, seed=5)
    x_t = pad_to_multiple(to_tensor(pixels), 64)
    x = npe.padded(pixels)
    assert np.array_equal(x, x_t[0].numpy())  # the same padded input
    with torch.no_grad():
        for q in (None, 2.5):
            y_t = m.analyse(x_t, q)[0].numpy()
            y = a.analyse(x, q)
            assert np.abs(y - y_t).max() <= 1e-4 * np.abs(y_t).max()
        y_s_t = m.scaled_latent(m.analyse(x_t, 2.5), 2.5)
        z_t = m._hyper_analyse(y_s_t)[0].numpy()
    y_s = a.scaled(a.analyse(x, 2.5), 2.5)
    assert np.abs(y_s - y_s_t[0].numpy()).max() <= 1e-4 * np.abs(y_s).max()
    assert np.abs(a.hyper_analyse(y_s) - z_t).max() <= 1e-4 * np.abs(z_t).max()


def test_export_onnx_gives_the_encoders_latents(tmp_path):
    """`clc export-onnx`: the plain g_a, and at a quality the latent the coder rounds, as the numpy analysis
    computes them; an existing output needs --force."""
    import onnx
    import onnxruntime as ort

    path = export(tmp_path, dataclasses.replace(TINY, rate_scales=True))
    a = npe.NumpyAnalysis(lite.NumpyModel.load(path, encoder=True), onnx=False)
    x = npe.padded(synthetic_photo(150, 200, seed=6))
    for q, want in ((None, a.analyse(x)), (2.5, a.scaled(a.analyse(x, 2.5), 2.5))):
        out = tmp_path / f"g_a-{q}.onnx"
        r = run_clc("export-onnx", "--model", str(path), "-o", str(out), *(["-q", str(q)] if q else []))
        assert r.returncode == 0, r.stderr.decode()
        onnx.checker.check_model(onnx.load(out), full_check=True)  # a valid file, its shapes inferable
        y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["y"], {"x": x[None]})[0][0]
        assert y.shape == want.shape
        assert np.abs(y - want).max() <= 1e-4 * np.abs(want).max()
    r = run_clc("export-onnx", "--model", str(path), "-o", str(out))
    assert r.returncode == 2 and "exists (use --force to overwrite)" in r.stderr.decode()


def latents(f: bytes, lm, d) -> np.ndarray:
    c = container.unpack(f)
    tokens = d.tokens(c.ref_indices) if c.ref_indices else None
    return lm.decode_latents(c, (c.height, c.width), tokens)[0]


@pytest.fixture(scope="module")
def shipped_numpy():
    return npe.NumpyEncoder(default_model_path())


@pytest.mark.parametrize("image,effort,fallback", [("rgb", 0, False), ("gray", 0, True), ("rgba", 1, True),
                                                   ("rgb", 2, True), ("large", 0, False)])
def test_files_are_the_torch_encoders(shipped_codec, shipped_numpy, tmp_path, monkeypatch, image, effort, fallback):
    """The shipped model and dictionary: the same references, header, metadata and alpha; the same latents up to
    a rounding flip at float's edge; sizes within a few bytes; and the file decodes on both decoders. "large":
    an image over the query's pixel limit (lowered here from 4 MP), queried at a reduced size by both."""
    if image == "large":  # padded 192 x 128 -> a 94 x 64 query view (odd latent sizes on the way)
        monkeypatch.setattr(retrieval, "QUERY_MAX_PIXELS", 6000)  # (both encoders' query_size)
        assert npe.query_view(npe.padded(synthetic_photo(96, 136, seed=2))).shape == (3, 64, 94)
    pixels = synthetic_photo(96, 136, seed=2)
    im = Image.fromarray(pixels)
    if image == "gray":
        im = im.convert("L")
    elif image == "rgba":
        im.putalpha(Image.fromarray(np.tile(np.arange(136, dtype=np.uint8), (96, 1))))
    exif = Image.Exif()
    exif[0x010F] = "numpy encoder test"
    im.save(tmp_path / "p.png", exif=exif.tobytes())
    img = load_image(tmp_path / "p.png")
    r, notes = shipped_numpy.encode(img, 3.0, 3, effort=effort, fallback=fallback)
    want = shipped_codec.encode_full(img, 3.0, 3, effort=effort, fallback=fallback)
    got, ref = container.unpack(r.data), container.unpack(want.data)
    assert (r.refs, r.quality, notes) == (want.refs, want.quality, want.notes)
    assert r.refs == 3 or fallback  # (fallback False: the file with references, whatever its size)
    for field in ("width", "height", "model_id", "quality", "grayscale", "dictionary_id", "ref_indices", "metadata",
                  "alpha"):
        assert getattr(got, field) == getattr(ref, field), field
    assert abs(len(r.data) - len(want.data)) <= max(8, len(want.data) // 200)
    d = shipped_numpy.backend.dictionary
    y, y_t = latents(r.data, shipped_numpy.model, d), latents(want.data, shipped_numpy.model, d)
    assert np.mean(y == y_t) >= 0.995
    fast = shipped_codec.decode_pixels(r.data)[0]  # torch's fast and exact synthesis, and the numpy decoder
    exact = shipped_codec.decode_pixels(r.data, exact=True)[0]
    lite_px = Decoder(device="cpu").decode_full(r.data).pixels
    assert np.abs(lite_px.astype(int) - exact.astype(int)).max() <= 1
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 1


@pytest.mark.parametrize("kind,value", [("bpp", 0.6), ("size", 700), ("psnr", 31.0), ("bpp", 0.001)])
def test_targets_find_the_torch_encoders_quality(shipped_codec, shipped_numpy, kind, value):
    """Rate control on the torch-free encoder: the quality the torch encoder finds, a file within a few bytes of
    its file, and the same note when the target is out of reach."""
    pixels = synthetic_photo(96, 136, seed=4)
    r, notes = shipped_numpy.encode(pixels, None, 3, target=Target(kind, value))
    want = shipped_codec.encode_full(pixels, refs=3, **{f"target_{kind}": value})
    assert (r.quality, r.refs, r.note or "", notes) == (want.quality, want.refs, want.target_note, want.notes)
    assert abs(len(r.data) - len(want.data)) <= max(8, len(want.data) // 200)


def test_the_encoder_takes_numpy_where_it_can_and_torch_for_the_rest(tiny_model_path, photo_png):
    """In a fresh process: the default encode, effort 2 and a target import no torch; effort 3, near-lossless, a
    preview and a reconstruction go to the torch Codec and give its bytes."""
    code = f"""
import sys
from clccodec.encoding.backends import Encoder
from clccodec.encoding.ratecontrol import Target
e = Encoder({str(tiny_model_path)!r}, False, "cpu")
r = e.encode_full({str(photo_png)!r}, 3)
e.encode_full({str(photo_png)!r}, 3, effort=2)
e.encode_full({str(photo_png)!r}, target_bpp=0.5)
assert "torch" not in sys.modules, "torch imported"
sys.stdout.buffer.write(r.data)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    e = Encoder(tiny_model_path, False, "cpu")
    assert e.encode_full(photo_png, 3).data == r.stdout
    c = Codec(tiny_model_path, False, "cpu")
    for kw in ({"effort": 3}, {"near_lossless": 2}, {"slices": 1}):
        assert e.encode_full(photo_png, 3, **kw).data == c.encode_full(photo_png, 3, **kw).data, kw
    with_pixels = e.encode_full(photo_png, 3, reconstruct=True)
    assert with_pixels.reconstruction is not None and with_pixels.reconstruction.shape == (96, 136, 3)
    with pytest.raises(UsageError, match="quality must be a number between"):
        e.encode_full(photo_png, 11)
    with pytest.raises(UsageError, match="at most one of target_bpp"):
        e.encode_full(photo_png, target_bpp=0.5, target_size=900)


def test_cli_encode_imports_no_torch(tmp_path, photo_png):
    out = tmp_path / "p.clc"
    assert probe_modules("encode", str(photo_png), "-o", str(out), names=("torch", "sklearn")) == []
    r = run_clc("decode", str(out), "-o", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(tmp_path / "p.png").size == (136, 96)
    assert probe_modules("encode", str(photo_png), "-o", str(tmp_path / "e3.clc"), "--effort", "3",
                         names=("torch",)) == ["torch"]


def test_what_goes_to_torch_is_decided_before_any_work(shipped_numpy, tiny_model_path, tmp_path):
    """Efforts with refinement and partial files go to torch; bad arguments fail before the image is read; a loaded
    torch model is served by torch."""
    assert shipped_numpy.supported(refs=3, effort=2, slices=5, near_lossless=None)
    assert not shipped_numpy.supported(refs=3, effort=3, slices=None, near_lossless=None)
    assert not shipped_numpy.supported(refs=3, effort=0, slices=2, near_lossless=None)
    e = Encoder(tiny_model_path, False, "cpu")
    with pytest.raises(UsageError, match="target bpp must be a positive number"):
        e.encode_full(tmp_path / "missing.png", target_bpp=0)
    model = Codec(tiny_model_path, False, "cpu").model
    photo = synthetic_photo(64, 64)
    assert Encoder(model, False, "cpu").encode(photo, 3) == Codec(model, False, "cpu").encode(photo, 3)
