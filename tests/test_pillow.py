"""The Pillow plugin, exercised only through Pillow's own API (Image.open, load, save, convert, thumbnail)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError

import clccodec.pillow  # noqa: F401 - registers the plugin
from clccodec.errors import UsageError

from .conftest import REPO, synthetic_photo


@pytest.fixture(scope="module")
def rgba(tmp_path_factory):
    """An RGBA photo saved through Pillow as .clc (shipped model, no references: small and quick)."""
    d = tmp_path_factory.mktemp("pillow")
    alpha = np.full((40, 64), 255, np.uint8)
    alpha[10:20, 8:40] = 0
    im = Image.fromarray(np.dstack([synthetic_photo(40, 64), alpha]), "RGBA")
    im.info["icc_profile"] = b""  # none
    im.save(d / "a.clc", quality=4, refs=0, device="cpu")
    return d, alpha


def test_open_reads_the_header_and_load_decodes(rgba):
    d, alpha = rgba
    im = Image.open(d / "a.clc")
    assert (im.format, im.mode, im.size) == ("CLC", "RGBA", (64, 40))
    assert im.info["clc_quality"] == 4.0 and im.info["clc_references"] == 0
    assert im.info["clc_model_release"].startswith("weights v")
    a = np.asarray(im)
    assert a.shape == (40, 64, 4) and np.array_equal(a[:, :, 3], alpha)
    assert Image.open(d / "a.clc").convert("L").mode == "L"
    thumb = Image.open(d / "a.clc")
    thumb.thumbnail((32, 32))
    assert thumb.size == (32, 20) and thumb.mode == "RGBA"


def test_opening_needs_no_torch(rgba):
    d, _ = rgba
    code = ("import sys, clccodec.pillow; from PIL import Image; im = Image.open(sys.argv[1]); "
            "print(im.size, im.mode, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(d / "a.clc")], capture_output=True, text=True, cwd=REPO)
    assert r.stdout.strip() == "(64, 40) RGBA False", r.stderr


def test_save_takes_encode_keywords_and_metadata_overrides(rgba, tmp_path):
    d, _ = rgba
    src = Image.open(d / "a.clc").convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "clccodec test camera"
    buf = io.BytesIO()
    src.save(buf, format="CLC", quality=2, refs=0, exif=exif.tobytes(), device="cpu")
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.mode == "RGB" and im.info["clc_quality"] == 2.0
    assert im.getexif()[0x010F] == "clccodec test camera"
    with pytest.raises(UsageError, match="quality must be a number between 0 and 8, got 90"):
        src.save(tmp_path / "b.clc", quality=90)


def test_the_extension_and_mime_type_are_registered():
    assert Image.registered_extensions()[".clc"] == "CLC"
    assert Image.MIME["CLC"] == "image/x-clc"


def test_a_damaged_file_fails_as_pillow_files_do(rgba, tmp_path):
    d, alpha = rgba
    data = (d / "a.clc").read_bytes()
    (tmp_path / "junk.clc").write_bytes(b"CLC\x02" + b"\xff" * 40)
    with pytest.raises(UnidentifiedImageError):
        Image.open(tmp_path / "junk.clc")
    (tmp_path / "cut.clc").write_bytes(data[:-6])
    with pytest.raises(OSError, match="truncated"):
        Image.open(tmp_path / "cut.clc").load()
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        im = Image.open(tmp_path / "cut.clc")
        im.load()  # from its complete slices, as Pillow's decoders do with a truncated file
        assert im.size == (64, 40) and np.array_equal(np.asarray(im)[:, :, 3], alpha)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_the_entry_point_names_the_registering_function():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="pillow.plugins") if e.name == "clc"]
    assert ep.value == "clccodec.pillow:register_clc_opener"
    ep.load()()  # harmless twice
    assert Image.registered_extensions()[".clc"] == "CLC"
