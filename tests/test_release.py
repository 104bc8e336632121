"""Issue-20 promises: light start-up, the fast synthesis's bound, the registry of released models, a wheel that
works outside the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from clccodec.format import container
from clccodec.defaults import DEFAULT_DICTIONARY
from clccodec.model import releases as release
from clccodec.errors import ModelMismatchError

from .conftest import REPO, synthetic_photo

HEAVY = ("torch", "compressai", "faiss", "sklearn")
FIXTURE = REPO / "tests" / "data" / "compat" / "a_q2_m3.clc"
PROBE = """
import json, runpy, sys
sys.argv = ["clc", *json.loads(sys.argv[1])]
try:
    runpy.run_module("clccodec", run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


def probe(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, timeout=120)
    return json.loads(r.stderr.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("encode", "--help"), ("decode", "--help"),
                                  ("info", str(FIXTURE)), ("info", "--json", str(DEFAULT_DICTIONARY))])
def test_light_commands_import_no_heavy_module(args):
    res = probe(*args)
    assert res["code"] == 0 and res["heavy"] == [], res


def test_importing_the_library_changes_nothing_in_the_process():
    """CompressAI's lazy start-up and the warnings filter are the `clc` process's own (cli/startup.py): a program
    that imports clccodec gets the real compressai and scipy.stats and its own warnings filters."""
    code = """
import sys, warnings
import torch, compressai, scipy.stats
filters, modules = list(warnings.filters), dict(sys.modules)
import clccodec, clccodec.api
from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
assert compressai.__file__.endswith("__init__.py") and "compressai.zoo" in sys.modules  # its own __init__ ran
assert warnings.filters == filters
assert all(sys.modules[name] is m for name, m in modules.items()), "a module was replaced"
assert type(CLCModel(TINY).entropy_bottleneck).__module__.startswith("compressai.entropy_models")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()


def test_the_cli_uses_compressai_without_its_eager_imports():
    code = """
import sys
from clccodec.cli import startup
startup.load()
assert "compressai" not in sys.modules  # until something imports it
import clccodec.model.network
assert "torch_geometric" not in sys.modules and "compressai.zoo" not in sys.modules, sorted(sys.modules)
import compressai
from compressai import ans
from compressai.entropy_models import EntropyBottleneck
from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
assert type(CLCModel(TINY).entropy_bottleneck) is EntropyBottleneck
assert compressai.__version__ == "1.2.8" and compressai.get_entropy_coder() == "ans"
assert compressai.zoo.image_models  # a subpackage still imports when touched
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()


# -- fast synthesis -----------------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.mark.parametrize("quality", [1, 4, 8])
def test_fast_synthesis_is_within_a_last_bit_of_the_exact_one(shipped_codec, quality):
    """Trained weights on a photo-like picture: the same symbols, pixels a last bit or two away, same PSNR."""
    img = synthetic_photo(128, 192, seed=quality)
    data = shipped_codec.encode(img, quality, 3)
    fast, _ = shipped_codec.decode_pixels(data)
    exact, _ = shipped_codec.decode_pixels(data, exact=True)
    diff = np.abs(fast.astype(int) - exact.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05, (diff.max(), diff.mean())
    assert abs(psnr(fast, img) - psnr(exact, img)) < 0.01
    assert shipped_codec.encode_full(img, quality, 3, reconstruct=True).reconstruction.tobytes() == fast.tobytes()


def test_fast_synthesis_on_the_tiny_model_runs_and_stays_close(tiny_model_path):
    from clccodec import Codec

    codec = Codec(tiny_model_path, dictionary=False, device="cpu")
    res = codec.encode_full(synthetic_photo(70, 90), 5, 0, reconstruct=True)
    fast, _ = codec.decode_pixels(res.data)
    exact, _ = codec.decode_pixels(res.data, exact=True)
    assert np.array_equal(fast, res.reconstruction)
    # random weights amplify grid noise far beyond trained ones (tests/test_exact.py): a loose bound here
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 3


# -- released models ----------------------------------------------------------------------------------------------


def test_the_shipped_model_and_dictionary_are_registered(shipped_codec):
    """A new shipped model needs its line in clccodec/release.py (RELEASED_MODELS), newest last."""
    newest = release.RELEASED_MODELS[-1]
    assert newest.model_id == shipped_codec.model.model_id.hex(), "add the shipped model to RELEASED_MODELS"
    assert newest.dictionary_id == shipped_codec.dictionary.id.hex()
    ids = [r.model_id for r in release.RELEASED_MODELS]
    assert len(set(ids)) == len(ids) and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert {"8ce8796450724e5c", "02cc9cca9ee501be", "b42cc3d3b8be2c8f", "b21d6c205d2cd616", "5e46455ef54b089e",
            "bfb5f1e39f2ec27f"} <= set(ids)


def test_a_file_of_a_superseded_model_names_its_release(tiny_model_path):
    from clccodec import Codec

    codec = Codec(tiny_model_path, dictionary=False, device="cpu")
    f = container.unpack(codec.encode(synthetic_photo(32, 32), 3, 0))
    f.model_id = bytes.fromhex("8ce87964")  # what weights v2 wrote
    with pytest.raises(ModelMismatchError) as e:
        codec.decode_pixels(container.pack(f))
    msg = str(e.value)
    assert "weights v2 of clccodec 0.1.0" in msg and "git show 7612c6d:models/clc-full.pt" in msg
    assert "--model clc-v2.pt" in msg and "\n" not in msg
    f.model_id = bytes.fromhex("0badf00d")
    with pytest.raises(ModelMismatchError, match="not a released model"):
        codec.decode_pixels(container.pack(f))
    f.model_id = bytes.fromhex(release.RELEASED_MODELS[-1].model_id[:8])  # the shipped weights: nothing to fetch
    with pytest.raises(ModelMismatchError) as e:
        codec.decode_pixels(container.pack(f))
    assert "the shipped model wrote it: decode it without --model" in str(e.value) and "git show" not in str(e.value)


def test_info_names_the_release_of_a_file():
    from clccodec.cli.info import describe

    assert describe(FIXTURE.read_bytes())["model_release"] == "weights v15 of clccodec 0.13.0"


# -- a real, non-editable install ---------------------------------------------------------------------------------


@pytest.mark.skipif(bool(os.environ.get("CLC_SKIP_INSTALL_TEST")), reason="CLC_SKIP_INSTALL_TEST is set")
def test_wheel_installed_outside_the_source_tree_encodes_and_decodes(tmp_path, tiny_model_path):
    """pip wheel + install into a fresh venv (dependencies borrowed from this environment through a .pth, so
    nothing is downloaded); `clc` then finds the shipped model and dictionary inside the installed package."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(wheels)]
    try:
        import setuptools  # noqa: F401

        r = subprocess.run(build + ["--no-build-isolation"], capture_output=True, timeout=600)
    except ImportError:
        r = None
    if r is None or r.returncode != 0:  # no usable setuptools here: let pip fetch one (a local index or network)
        r = subprocess.run(build, capture_output=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr.decode().strip().splitlines()[-1:]}")
    (wheel,) = wheels.glob("clccodec-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                        str(wheel)], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    work = tmp_path / "work"
    work.mkdir()
    from PIL import Image

    Image.fromarray(synthetic_photo(64, 96)).save(work / "a.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLC_MODEL", "CLC_DICTIONARY")}
    where = subprocess.run([py, "-c", "import clccodec.defaults as d; print(d.DEFAULT_MODEL)"], capture_output=True,
                           text=True, env=env, cwd=work, check=True).stdout.strip()
    assert where.startswith(str(site)) and Path(where).is_file()
    clc = [str(py), str(venv / "bin" / "clc")]
    for args in (["encode", "a.png", "-o", "a.clc"], ["info", "a.clc"], ["decode", "a.clc", "-o", "b.png"]):
        r = subprocess.run(clc + args, capture_output=True, env=env, cwd=work, timeout=600)
        assert r.returncode == 0, (args, r.stderr.decode())
    info = container.read_info((work / "a.clc").read_bytes())
    assert info["model_id"] == release.RELEASED_MODELS[-1].model_id[:8]
    # the default dictionary is found inside the package too (the CLI's file may have dropped its references)
    snippet = ("import clccodec; print(len(clccodec.read_info(clccodec.encode('a.png', refs=3, fallback=False))"
               "['references']))")
    r = subprocess.run([py, "-c", snippet], capture_output=True, text=True, env=env, cwd=work, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "3", r.stderr
    assert Image.open(work / "b.png").size == (96, 64)
    r = subprocess.run(clc + ["encode", "a.png", "-o", "t.clc", "--refs", "0"], capture_output=True, cwd=work,
                       env=env | {"CLC_MODEL": str(tiny_model_path)}, timeout=600)  # and weights from elsewhere
    assert r.returncode == 0, r.stderr.decode()
