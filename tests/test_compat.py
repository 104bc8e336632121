"""Byte compatibility: files encoded before a change must be encoded to the same bytes after it, and decode.

tests/data/compat/ holds small synthetic images and the .clc files the shipped model (and the seeded tiny test
model) wrote for them, with a manifest of hashes (scripts/make_compat_fixtures.py). They are container version 1
(written before version 2): they must keep decoding to the same pixels, and today's version-2 encodes must carry
the same strings. A refactoring that changes a single byte or decoded pixel fails here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from clccodec import Codec
from clccodec.format import container
from clccodec.model import releases as release
from clccodec.errors import ModelMismatchError
from clccodec.format.ids import file_id

from .conftest import REPO

COMPAT = REPO / "tests" / "data" / "compat"
MANIFEST = json.loads((COMPAT / "manifest.json").read_text())


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def cases(model: str) -> list[tuple[str, dict]]:
    return [(name, c) for name, c in MANIFEST["files"].items() if c["model"] == model]


def reencoded(codec: Codec, case: dict) -> bytes:
    """The case's source coded again with its reference count, as a version-2 file (with exactly that many
    references: the default encoder may keep the file without them, which check() tests)."""
    return codec.encode(COMPAT / case["source"], case["quality"], case["refs"], fallback=False)


def check(codec: Codec, name: str, case: dict) -> None:
    data = (COMPAT / name).read_bytes()
    assert sha(data) == case["sha256"], f"{name} differs from its manifest entry"
    assert data[3] == 1, "the fixtures are version-1 files, written before container v2"
    again = reencoded(codec, case)
    # encoders now write version 2: the same header fields and entropy-coded strings, so the same file when
    # written as version 1 again
    assert again[3] == container.VERSION == 2
    assert container.pack(container.unpack(again), version=1) == data, f"{name}: re-encoding gives other bytes"
    # a version-1 file from before v2 decodes to the same pixels (exact synthesis), and so does its v2 twin
    pixels, gray = codec.decode_pixels(data, exact=True)
    assert not gray and sha(pixels.tobytes()) == case["pixels_sha256"], f"{name}: other decoded pixels"
    pixels2, _ = codec.decode_pixels(again, exact=True)
    assert sha(pixels2.tobytes()) == case["pixels_sha256"], f"{name}: the v2 file decodes to other pixels"
    if case["model"] == "shipped":  # the default fast synthesis: within a last bit of those pixels
        fast, _ = codec.decode_pixels(data)
        assert np.abs(fast.astype(int) - pixels.astype(int)).max() <= 2, name
    if case["refs"]:  # the default encoder writes the smaller of this file and its twin without references
        twin = next(n for n, c in cases(case["model"])
                    if (c["source"], c["quality"], c["refs"]) == (case["source"], case["quality"], 0))
        chosen = codec.encode(COMPAT / case["source"], case["quality"], case["refs"])
        assert container.pack(container.unpack(chosen), version=1) == min(data, (COMPAT / twin).read_bytes(),
                                                                          key=len), name


def test_fixture_files_are_valid_clc_files():
    assert len(MANIFEST["files"]) >= 5
    for name, case in MANIFEST["files"].items():
        f = container.unpack((COMPAT / name).read_bytes())
        assert f.num_refs == case["refs"] and f.quality == case["quality"]
        assert f.model_id == file_id(bytes.fromhex(case["model_id"]))


def test_tiny_model_files_are_reproduced(tiny_model_path):
    codec = Codec(tiny_model_path, dictionary=False, device="cpu")
    assert codec.model.model_id.hex() == MANIFEST["tiny_model_id"], "the seeded tiny model itself changed"
    for name, case in cases("tiny"):
        check(codec, name, case)


def test_shipped_model_files_are_reproduced(shipped_codec):
    if shipped_codec.model.model_id.hex() != MANIFEST["shipped_model_id"]:
        # newer weights: these are now old files, and the error must say which release decodes them
        written_by = release.find_release(bytes.fromhex(MANIFEST["shipped_model_id"]))
        assert written_by is not None, "the fixtures' model must stay in clccodec.model.releases.RELEASED_MODELS"
        for name, _ in cases("shipped"):
            with pytest.raises(ModelMismatchError, match=f"weights {written_by.weights} of clccodec"):
                shipped_codec.decode_pixels((COMPAT / name).read_bytes())
        return
    assert shipped_codec.dictionary is not None
    for name, case in cases("shipped"):
        check(shipped_codec, name, case)
