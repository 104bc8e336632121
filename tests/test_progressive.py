"""Progressive decoding (issue 22): previews from slice prefixes, truncated files, sampled detail, metadata.

Container-level truncation is in test_container.py, every truncation point through the decoder in
test_fuzz.py; here: what the decoded prefixes look like, preview files, the fill's determinism and
distribution, the ICC/EXIF/XMP round trip, and the CLI options.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from clccodec import Codec
from clccodec.format import container
from clccodec.evaluation.metrics import psnr
from clccodec.format.metadata import read_metadata
from clccodec.decoding.progressive import fill_symbols

from .conftest import assert_one_line_error, run_clc, synthetic_photo


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


@pytest.fixture(scope="module")
def photo():
    return synthetic_photo(128, 192, seed=2)


@pytest.fixture(scope="module")
def shipped_file(shipped_codec, photo):
    return shipped_codec.encode(photo, 4, 3)


def prefixes(data: bytes) -> list[bytes]:
    info = container.read_info(data)
    return [data[:e] for e in [info["hyper_end"], *info["slice_ends"]]]


def test_each_prefix_decodes_and_more_slices_look_better(shipped_codec, shipped_file, photo):
    parts = prefixes(shipped_file)
    assert len(parts) == len(shipped_codec.model.cfg.slices) + 1 and parts[-1] == shipped_file
    results = [shipped_codec.decode_full(p, partial=True) for p in parts]
    assert [r.slices_used for r in results] == list(range(len(parts)))
    assert [r.truncated for r in results] == [True] * (len(parts) - 1) + [False]
    quality = [psnr(photo, r.pixels) for r in results]
    assert quality[-1] > quality[0] + 2, quality  # the hyper-latent alone is a (blurry) preview
    assert all(b > a - 0.1 for a, b in zip(quality, quality[1:])), quality
    full, _ = shipped_codec.decode_pixels(shipped_file)
    assert np.array_equal(results[-1].pixels, full)


def test_mean_fill_is_deterministic(shipped_codec, shipped_file):
    cut = prefixes(shipped_file)[2]
    a = shipped_codec.decode_full(cut, partial=True).pixels
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        b = shipped_codec.decode_full(cut, partial=True).pixels
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(a, b)


def test_sampled_detail_is_seeded(shipped_codec, shipped_file, photo):
    cut = prefixes(shipped_file)[1]
    s0 = shipped_codec.decode_full(cut, partial=True, detail="sample", seed=0).pixels
    again = shipped_codec.decode_full(cut, partial=True, detail="sample", seed=0).pixels
    s1 = shipped_codec.decode_full(cut, partial=True, detail="sample", seed=1).pixels
    mean = shipped_codec.decode_full(cut, partial=True).pixels
    assert np.array_equal(s0, again)
    assert not np.array_equal(s0, s1) and not np.array_equal(s0, mean)
    # the mean is the MSE-optimal fill; a sample adds plausible detail and costs PSNR
    assert psnr(photo, mean) > psnr(photo, s0)
    # a complete file has nothing to sample: identical to its normal decode
    full = shipped_codec.decode_full(shipped_file, detail="sample", seed=5).pixels
    assert np.array_equal(full, shipped_codec.decode_pixels(shipped_file)[0])


def test_sampled_symbols_follow_the_predicted_distribution(tiny):
    """Decoding seeded random bytes with a symbol's CDF draws from that discretised Gaussian."""
    table = tiny.model.entropy.gaussian.scale_table
    for index in (10, 30, 45):
        sigma = float(table[index])
        mu = torch.full((1, 4, 64, 64), 0.25, dtype=torch.float64)
        idx = torch.full(mu.shape, index, dtype=torch.int32)
        y = fill_symbols(tiny.model, [], "sample", seed=index)(0, mu, idx) - mu
        assert torch.equal(y, torch.round(y))  # integer residuals on the coding lattice
        expected = (torch.distributions.Normal(0, sigma).cdf(torch.arange(-300, 301) + 0.5)).diff()
        expected_std = float(((torch.arange(-299, 301) ** 2) * expected).sum().sqrt())
        assert abs(float(y.mean())) < 0.05 * sigma + 0.02
        assert float(y.std()) == pytest.approx(expected_std, rel=0.05)
    mean = fill_symbols(tiny.model, [], "mean")(0, mu, idx)
    assert torch.equal(mean, mu)


def test_preview_file_is_the_prefix(tiny, photo):
    full = tiny.encode_full(photo, 4, 0)
    preview = tiny.encode_full(photo, 4, 0, reconstruct=True, slices=1)
    f, p = container.unpack(full.data), container.unpack(preview.data)
    assert p.slices_present == 1 and p.slices_total == f.slices_total == 2 and not p.truncated
    assert p.hyper == f.hyper and p.slices == f.slices[:1]
    assert len(preview.data) < len(full.data)
    r = tiny.decode_full(preview.data)  # a deliberate preview needs no --partial
    assert r.slices_used == 1 and not r.truncated
    assert np.array_equal(r.pixels, preview.reconstruction)
    cut = full.data[: container.read_info(full.data)["slice_ends"][0]]
    assert np.array_equal(r.pixels, tiny.decode_full(cut, partial=True).pixels)
    hyper_only = tiny.encode(photo, 4, 0, slices=0)
    assert tiny.decode_full(hyper_only).slices_used == 0
    with pytest.raises(Exception, match=r"slices \(the model codes 2\) must be a whole number between 0 and 2"):
        tiny.encode(photo, 4, 0, slices=3)


def test_truncated_file_needs_partial(tiny, photo):
    data = tiny.encode(photo, 4, 0)
    with pytest.raises(container.TruncatedError if hasattr(container, "TruncatedError") else Exception,
                       match="truncated"):
        tiny.decode_full(data[:-3])
    assert tiny.decode_full(data[:-3], partial=True).slices_used == 1
    with pytest.raises(Exception, match="detail must be"):
        tiny.decode_full(data, detail="noise")


# -- metadata ---------------------------------------------------------------------------------------------------


def tagged_png(pixels: np.ndarray) -> tuple[bytes, dict]:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "clccodec test camera"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", icc_profile=icc, exif=exif.tobytes(), pnginfo=info)
    return buf.getvalue(), {"icc": icc, "make": "clccodec test camera", "xmp": xmp}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_icc_exif_xmp_survive_encode_and_decode(tiny, photo, fmt):
    from clccodec.io.images import encode_image

    png, want = tagged_png(photo)
    data = tiny.encode(png, 4, 0)
    meta = container.unpack(data).metadata
    assert meta["icc"] == want["icc"] and meta["xmp"] == want["xmp"] and meta["exif"].startswith(b"Exif\0\0")
    r = tiny.decode_full(data)
    out = Image.open(io.BytesIO(encode_image(Image.fromarray(r.pixels), fmt, r.metadata)))
    out.load()
    assert out.info["icc_profile"] == want["icc"]
    assert out.getexif()[0x010F] == want["make"]
    if fmt != "PNG":
        assert out.info["xmp"] == want["xmp"]
    else:
        assert out.info["XML:com.adobe.xmp"] == want["xmp"].decode()
    stripped = tiny.encode(png, 4, 0, strip=True)
    assert container.unpack(stripped).metadata == {}
    assert len(data) - len(stripped) > len(want["icc"])  # every metadata byte is counted in the file
    # the API image carries the profile too, so Pillow writes it when the caller saves
    assert tiny.decode(data).info["icc_profile"] == want["icc"]


def test_a_profile_of_another_colour_space_is_dropped_with_a_note():
    im = Image.new("RGB", (8, 8))
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[16:20] = b"CMYK"
    im.info["icc_profile"] = bytes(icc)
    notes: list[str] = []
    assert "icc" not in read_metadata(im, grayscale=False, notes=notes)
    assert notes and "ICC profile dropped" in notes[0]


# -- CLI --------------------------------------------------------------------------------------------------------


def test_cli_preview_partial_info_and_metadata(tmp_path, tiny_model_path, photo):
    env = {"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(tmp_path / "none")}
    png, want = tagged_png(photo)
    (tmp_path / "photo.png").write_bytes(png)
    assert run_clc("encode", "photo.png", "-o", "full.clc", cwd=tmp_path, env_extra=env).returncode == 0
    r = run_clc("encode", "photo.png", "-o", "preview.clc", "--slices", "1", "--strip", cwd=tmp_path, env_extra=env)
    assert r.returncode == 0, r.stderr
    r = run_clc("info", "full.clc", "preview.clc", "--json", cwd=tmp_path, env_extra=env)
    full, preview = json.loads(r.stdout)  # several files: one JSON array
    assert full["format"] == "clc v2" and full["slice_ends"][-1] == full["bytes"] == (tmp_path / "full.clc").stat().st_size
    assert full["metadata"]["icc"] == len(want["icc"]) and preview["metadata"] == {}
    assert preview["slices_present"] == 1 and preview["slices"] == 2
    cut = (tmp_path / "full.clc").read_bytes()[: full["slice_ends"][0] + 5]
    (tmp_path / "cut.clc").write_bytes(cut)
    r = run_clc("decode", "cut.clc", "-o", "cut.png", cwd=tmp_path, env_extra=env)
    assert_one_line_error(r, "truncated")
    assert r.returncode == 3 and not (tmp_path / "cut.png").exists()
    r = run_clc("decode", "cut.clc", "-o", "cut.webp", "--partial", "--detail", "sample", "--seed", "7",
                cwd=tmp_path, env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "1 of 2 slices (truncated file), the rest sampled" in r.stderr.decode()
    out = Image.open(tmp_path / "cut.webp")
    assert out.info["icc_profile"] == want["icc"]  # the profile comes before the strings: previews keep it
    r = run_clc("decode", "cut.clc", "-o", "x.png", "--partial", "--detail", "bogus", cwd=tmp_path, env_extra=env)
    assert_one_line_error(r, "--detail")


def test_container_and_metadata_never_import_torch(tiny, photo, tmp_path):
    """`clc info` must stay torch-free: the v2 reader and the metadata module are plain Python."""
    import subprocess
    import sys

    path = tmp_path / "x.clc"
    path.write_bytes(tiny.encode(photo, 4, 0))
    code = ("import sys, clccodec.format.container as c, clccodec.format.metadata; "
            f"i = c.read_info(open({str(path)!r}, 'rb').read()); assert i['slice_ends'], i; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
