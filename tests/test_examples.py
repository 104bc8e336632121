"""The shipped examples really run (with the tiny model standing in for the shipped one)."""

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from .conftest import REPO, synthetic_photo


def env_for(tiny_model_path, tmp_path):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["CLC_MODEL"] = str(tiny_model_path)
    env["CLC_DICTIONARY"] = str(tmp_path / "no-dictionary")
    return env


def test_batch_pipeline(tiny_model_path, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_photo(48, 64, seed=i)).save(src / f"im{i}.png")
    r = subprocess.run(["bash", str(REPO / "examples" / "batch.sh"), str(src), str(tmp_path / "out"), "2"],
                       env=env_for(tiny_model_path, tmp_path), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out" / "png").iterdir()) == ["im0.png", "im1.png", "im2.png"]
    total = sum(p.stat().st_size for p in (tmp_path / "out" / "clc").iterdir())
    assert f"3 files, {total} bytes" in r.stdout.decode()


def test_api_example(tiny_model_path, tmp_path):
    Image.fromarray(synthetic_photo(64, 64)).save(tmp_path / "a.png")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "api_example.py"), str(tmp_path / "a.png"),
                        "--model", str(tiny_model_path), "--dict", "none"], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 4 and all("bpp" in ln and "PSNR" in ln for ln in lines)
