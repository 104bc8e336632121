"""Shared fixtures: a tiny exported model (random weights, fast on CPU) and small synthetic photos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
from clccodec.model.weights import prepare_for_export, save_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, edges and texture: enough structure for real rate/distortion behaviour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(xx / (7 + 3 * seed)) * np.cos(yy / 11),
        90 + 0.5 * xx * 255 / max(w, 1) * 0.6 + 40 * (yy > h / 2),
        160 - 80 * np.cos((xx + yy) / 13),
    ], axis=2)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    torch.manual_seed(1234)
    model = CLCModel(TINY)
    prepare_for_export(model)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_weights(model, path)
    return path


@pytest.fixture(scope="session")
def shipped_codec():
    """The shipped model and default dictionary, loaded once for the whole session."""
    from clccodec import Codec

    return Codec(device="cpu")


@pytest.fixture(scope="session")
def photo_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(synthetic_photo(96, 136)).save(path)
    return path


def run_clc(*args: str, env_extra: dict | None = None, stdin: bytes | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `clc` entry point in a fresh process."""
    env = dict(os.environ)
    env.pop("CLC_DEBUG", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "clccodec", *args], input=stdin, capture_output=True,
                          env=env, cwd=cwd, timeout=600)


def assert_one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    """The CLI's failure contract: non-zero exit, no traceback, exactly one line on stderr naming the problem."""
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], err
