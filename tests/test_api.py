"""The Python API takes what Pillow takes, lists its keywords, and answers a bad argument with a clccodec error."""

from __future__ import annotations

import inspect
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clccodec
from clccodec import Codec, Decoder
from clccodec.api import get_codec
from clccodec.errors import ClcError, ImageError, UsageError

from .conftest import synthetic_photo


@pytest.fixture(scope="module")
def codec(tiny_model_path):
    return Codec(tiny_model_path, dictionary=False, device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory, codec):
    d = tmp_path_factory.mktemp("api")
    Image.fromarray(synthetic_photo(24, 40)).save(d / "a.png")
    data = codec.encode(d / "a.png", quality=3, refs=0)
    (d / "a.clc").write_bytes(data)
    return d, data


class Named(os.PathLike):
    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_every_kind_of_image_source_encodes_the_same_bytes(codec, files):
    d, data = files
    png = (d / "a.png").read_bytes()
    sources = [str(d / "a.png"), d / "a.png", Named(d / "a.png"), png, bytearray(png), memoryview(png),
               io.BytesIO(png), Image.open(d / "a.png"), np.asarray(Image.open(d / "a.png"))]
    with open(d / "a.png", "rb") as fh:
        sources.append(fh)
        for src in sources:
            assert codec.encode(src, quality=3, refs=0) == data, type(src).__name__


def test_every_kind_of_file_source_decodes_and_reads_its_info(tiny_model_path, files):
    d, data = files
    dec = Decoder(tiny_model_path, False, "cpu")
    want = dec.decode_full(data).pixels
    with open(d / "a.clc", "rb") as fh:
        for src in (str(d / "a.clc"), d / "a.clc", Named(d / "a.clc"), data, bytearray(data), io.BytesIO(data), fh):
            assert np.array_equal(dec.decode_full(src).pixels, want), type(src).__name__
    assert clccodec.read_info(d / "a.clc") == clccodec.read_info(str(d / "a.clc")) == clccodec.read_info(data)
    assert clccodec.read_info(io.BytesIO(data))["bytes"] == len(data)


@pytest.mark.parametrize("call, message", [
    (lambda c, d: c.encode(12), "expected a path, bytes or a binary file object, got int"),
    (lambda c, d: c.decode(None), "got NoneType"),
    (lambda c, d: clccodec.read_info(3.5), "got float"),
    (lambda c, d: c.decode(open(d / "a.clc")), "text mode: open it with 'rb'"),  # noqa: SIM115
    (lambda c, d: c.decode(d / "missing.clc"), "missing.clc: no such file"),
    (lambda c, d: c.encode(d / "a.png", quality="high"), "quality must be a number between 0 and 8, got 'high'"),
    (lambda c, d: c.encode(d / "a.png", quality=float("nan")), "quality must be a number"),
    (lambda c, d: c.encode(d / "a.png", effort=2.5), "effort must be a whole number between 0 and 9, got 2.5"),
    (lambda c, d: c.encode(d / "a.png", refs=True), "refs must be a whole number between 0 and 64, got True"),
    (lambda c, d: c.encode(d / "a.png", slices=9), "slices (the model codes 2) must be a whole number"),
    (lambda c, d: c.encode(d / "a.png", target_size=0), "target_size must be a whole number of at least 1"),
    (lambda c, d: c.encode(d / "a.png", target_bpp=0.1, target_psnr=30), "at most one of"),
    (lambda c, d: c.decode(d / "a.clc", detail="blur"), "detail must be one of 'mean', 'sample', got 'blur'"),
    (lambda c, d: c.decode(d / "a.clc", seed=-1), "seed must be a whole number of at least 0"),
    (lambda c, d: c.decode(d / "a.clc", max_pixels=0), "max_pixels must be a whole number of at least 1"),
])
def test_a_bad_argument_is_a_usage_error_with_one_line(codec, files, call, message):
    d, _ = files
    with pytest.raises(UsageError) as e:
        call(codec, d)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_unreadable_image_is_an_image_error(codec, files):
    d, _ = files
    with pytest.raises(ImageError, match="not an image file Pillow can read"):
        codec.encode(b"plain text, not an image")
    with pytest.raises(ImageError, match="numpy images must be uint8"):
        codec.encode(np.zeros((8, 8, 3), np.float32))
    assert issubclass(ImageError, ClcError) and issubclass(UsageError, ClcError)


PUBLIC = [clccodec.encode, clccodec.decode, clccodec.encode_file, clccodec.decode_file, clccodec.read_info,
          Codec.encode, Codec.encode_full, Codec.decode, Codec.decode_full, Codec.decode_pixels, Decoder.decode,
          Decoder.decode_full, Decoder.decode_pixels, get_codec]


@pytest.mark.parametrize("fn", PUBLIC, ids=lambda f: f.__qualname__)
def test_public_signatures_list_their_keywords_with_types(fn):
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    assert not [p for p in params if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)], fn
    assert all(p.annotation is not inspect.Parameter.empty for p in params), fn
    assert fn.__doc__


def test_module_functions_take_what_codec_methods_take():
    """clccodec.encode/decode pass every keyword of the Codec/Decoder method they wrap (and add which codec)."""
    for fn, method in ((clccodec.encode, Codec.encode), (clccodec.decode, Decoder.decode)):
        wrapped = set(inspect.signature(method).parameters) - {"self"}
        assert wrapped <= set(inspect.signature(fn).parameters), fn
        assert {"model", "dictionary", "device"} <= set(inspect.signature(fn).parameters)


def test_file_functions_refuse_a_bad_output_before_the_work(tiny_model_path, files, tmp_path):
    d, _ = files
    kw = dict(model=tiny_model_path, dictionary=False, device="cpu")
    with pytest.raises(UsageError, match="output folder .*missing does not exist"):
        clccodec.encode_file(d / "a.png", tmp_path / "missing" / "a.clc", **kw)
    with pytest.raises(UsageError, match="exists"):
        clccodec.encode_file(d / "a.png", d / "a.clc", **kw)
    with pytest.raises(UsageError, match="cannot write '.gif' images"):
        clccodec.decode_file(d / "a.clc", tmp_path / "a.gif", **kw)
    clccodec.decode_file(io.BytesIO((d / "a.clc").read_bytes()), tmp_path / "a.png", **kw)
    assert Image.open(tmp_path / "a.png").size == (40, 24)
