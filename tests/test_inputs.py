"""Unusual input images: each is coded sensibly (with a note where information is lost) or refused clearly.
(Alpha: test_alpha.py.)"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from clccodec import Codec
from clccodec.errors import ImageError
from clccodec.io.images import load_image

from .conftest import REPO, synthetic_photo


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


def png_16bit_rgb(a: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = a.shape
    raw = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def saved(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def round_trip(codec: Codec, src) -> tuple[np.ndarray, bool, list[str]]:
    res = codec.encode_full(src, quality=4, refs=0, reconstruct=True)
    pixels, gray = codec.decode_pixels(res.data)
    assert np.array_equal(pixels, res.reconstruction)
    return pixels, gray, res.notes


def test_16bit_rgb_png_is_reduced_with_a_note(codec):
    a = (synthetic_photo(24, 40).astype(np.uint16) * 257)
    img = load_image(png_16bit_rgb(a))
    assert np.array_equal(img.pixels, (a >> 8).astype(np.uint8))
    assert img.notes == ["16-bit samples reduced to 8 bits"] and not img.grayscale
    pixels, gray, _ = round_trip(codec, png_16bit_rgb(a))
    assert pixels.shape == (24, 40, 3) and not gray


def test_16bit_grayscale_png_is_rounded_and_stays_gray(codec):
    g16 = (synthetic_photo(20, 30)[:, :, 0].astype(np.uint16) * 257 + 100)
    data = saved(Image.fromarray(g16), "PNG")
    img = load_image(data)
    assert img.grayscale and img.notes == ["16-bit samples reduced to 8 bits"]
    assert np.array_equal(img.pixels[:, :, 0], np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8))
    assert codec.decode(codec.encode(data, quality=4, refs=0)).mode == "L"


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_images_are_expanded(codec, transparent):
    rgb = Image.fromarray(synthetic_photo(32, 48))
    pal = rgb.quantize(16)
    if transparent:
        pal.info["transparency"] = 0
    data = saved(pal, "PNG", **({"transparency": 0} if transparent else {}))
    img = load_image(data)
    assert np.array_equal(img.pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[:, :, 3] if transparent else None
    assert img.notes == [] and (img.alpha is None if want is None else np.array_equal(img.alpha, want))
    if transparent:
        assert (want == 0).any()  # index 0 is used: the plane is not all opaque
    round_trip(codec, data)


def test_cmyk_jpeg_is_converted_to_rgb(codec):
    cmyk = Image.fromarray(synthetic_photo(32, 32)).convert("CMYK")
    data = saved(cmyk, "JPEG", quality=95)
    img = load_image(data)
    assert img.pixels.shape == (32, 32, 3) and not img.grayscale
    assert np.array_equal(img.pixels, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    round_trip(codec, data)


@pytest.mark.parametrize("orientation, size", [(1, (40, 24)), (3, (40, 24)), (6, (24, 40)), (8, (24, 40))])
def test_exif_orientation_is_applied(codec, orientation, size):
    im = Image.fromarray(synthetic_photo(24, 40))  # 40 wide, 24 high as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = saved(im, "JPEG", quality=95, exif=exif.tobytes())
    img = load_image(data)
    assert (img.width, img.height) == size
    pixels, _, _ = round_trip(codec, data)
    assert pixels.shape[:2] == size[::-1]


@pytest.mark.parametrize("mode", ["L", "1", "LA", "I;16"])
def test_grayscale_kinds_decode_to_grayscale(codec, mode):
    g = synthetic_photo(16, 24)[:, :, 1]
    im = Image.fromarray(g, "L")
    if mode == "1":
        im = im.convert("1")
    elif mode == "LA":
        im = Image.merge("LA", [im, Image.fromarray(np.full_like(g, 100))])
    elif mode == "I;16":
        im = Image.fromarray(g.astype(np.uint16) * 257)
    data = saved(im, "PNG")
    _, gray, notes = round_trip(codec, data)
    assert gray and "alpha" not in " ".join(notes)
    assert codec.decode(codec.encode(data, quality=4, refs=0)).mode == ("LA" if mode == "LA" else "L")


def test_opaque_alpha_is_no_alpha(codec):
    rgba = np.dstack([synthetic_photo(16, 16), np.full((16, 16), 255, np.uint8)])
    img = load_image(saved(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert img.notes == [] and img.alpha is None


@pytest.mark.parametrize("size", [(1, 1), (1, 97), (97, 1), (17, 63), (129, 65)])
def test_tiny_and_odd_sizes(codec, size):
    h, w = size
    pixels, gray, _ = round_trip(codec, synthetic_photo(h, w))
    assert pixels.shape == (h, w, 3) and not gray


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_animated_and_multi_frame_files_are_refused(codec, fmt):
    frames = [Image.fromarray(synthetic_photo(16, 16, seed=i)) for i in range(3)]
    data = saved(frames[0], fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated or multi-frame image \\(3 frames\\)"):
        codec.encode(data, quality=3, refs=0)


def test_single_frame_gif_is_fine(codec):
    data = saved(Image.fromarray(synthetic_photo(16, 16)).quantize(32), "GIF")
    round_trip(codec, data)


@pytest.mark.parametrize("kind, needle", [("empty", "not an image"), ("gif header", "not an image"),
                                          ("truncated png", "cannot decode image"),
                                          ("tiff without dimensions", "cannot decode image")])
def test_broken_images_are_refused(codec, kind, needle):
    png = saved(Image.fromarray(synthetic_photo(64, 64)), "PNG")
    if kind == "tiff without dimensions":  # found by benchmarks/fuzz.py: Pillow raised a TypeError
        blob = (REPO / "tests" / "data" / "inputs" / "fuzzed_tiff_without_dimensions.tif").read_bytes()
    else:
        blob = {"empty": b"", "gif header": b"GIF89a", "truncated png": png[: len(png) * 2 // 3]}[kind]
    with pytest.raises(ImageError, match=needle):
        codec.encode(blob, quality=3, refs=0)


def test_one_image_lister_for_every_command(tmp_path):
    from clccodec.errors import UsageError
    from clccodec.io.images import list_images

    img = Image.fromarray(synthetic_photo(8, 8))
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.png", ".hidden.png", "notes.txt"):
        (img.save(tmp_path / name) if name.endswith((".png", ".jpg")) else (tmp_path / name).write_text("x"))
    rel = lambda files: [f.relative_to(tmp_path).as_posix() for f in files]  # noqa: E731
    assert rel(list_images(tmp_path)) == ["a.jpg", "b.png"]  # sorted, hidden and non-image files skipped
    assert rel(list_images(tmp_path, recursive=True)) == ["a.jpg", "b.png", "sub/c.png"]
    assert rel(list_images(tmp_path, recursive=True, pattern="*.png")) == ["b.png", "sub/c.png"]
    assert rel(list_images([tmp_path / "b.png", tmp_path / "sub"])) == ["b.png", "sub/c.png"]  # in the order given
    img.save(tmp_path / "sub" / "kodim07.png")
    assert len(list_images(tmp_path, recursive=True)) == 4  # evaluation may read Kodak
    with pytest.raises(UsageError, match="Kodak is a test set, never train on it"):
        list_images(tmp_path, recursive=True, refuse_kodak="train on")
    with pytest.raises(UsageError, match="no such file or folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(UsageError, match="no images found"):
        list_images(tmp_path, pattern="*.tif")
