"""The shipped model and default dictionary: one real-weights round trip (the rest of the suite uses tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clccodec import read_info
from clccodec.defaults import DEFAULT_DICTIONARY, DEFAULT_MODEL

from .conftest import run_clc, synthetic_photo


@pytest.fixture(scope="module")
def shipped(shipped_codec):
    assert DEFAULT_MODEL.is_file(), f"{DEFAULT_MODEL} is part of the repository and of every wheel"
    assert DEFAULT_DICTIONARY.is_file(), f"{DEFAULT_DICTIONARY} is part of the repository and of every wheel"
    return shipped_codec


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_default_dictionary_belongs_to_the_shipped_model(shipped):
    # a dictionary left over from older weights would silently not be used: rebuild it with the weights
    assert shipped.dictionary is not None


def test_shipped_round_trip_in_a_fresh_process(shipped, tmp_path):
    img = synthetic_photo(128, 192, seed=2)
    res = shipped.encode_full(img, quality=6, refs=3, reconstruct=True, exact=True, fallback=False)
    info = read_info(res.data)
    assert len(info["references"]) == 3 and info["dictionary_id"]
    (tmp_path / "a.clc").write_bytes(res.data)
    r = run_clc("decode", str(tmp_path / "a.clc"), "-o", str(tmp_path / "a.png"), "--device", "cpu", "--exact")
    assert r.returncode == 0, r.stderr.decode()
    decoded = np.asarray(Image.open(tmp_path / "a.png"))
    assert np.array_equal(decoded, res.reconstruction)
    assert psnr(decoded, img) > 24  # a trained model, not noise (see MODEL_CARD.md for real numbers)


def test_shipped_quality_trades_rate_for_distortion(shipped):
    img = synthetic_photo(96, 128, seed=4)
    low = shipped.encode_full(img, quality=1, refs=0, reconstruct=True)
    high = shipped.encode_full(img, quality=8, refs=0, reconstruct=True)
    assert len(low.data) < len(high.data)
    assert psnr(low.reconstruction, img) < psnr(high.reconstruction, img)
