"""--effort: higher efforts make ordinary files (the unchanged decoder reads them), never worse ones; effort 0 is
today's encoder byte for byte. Tiny random model: these check behaviour, the gains are benchmarks/effort_rd.py's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from clccodec import Codec
from clccodec.format import container
from clccodec.encoding import refine
from clccodec.encoding.effort import EFFORT_MAX, EffortPlan, REFINE_ITERATIONS, SELECTION_REFS, effort_plan, rd_cost
from clccodec.errors import UsageError
from clccodec.evaluation.metrics import mse

from .conftest import run_clc, synthetic_photo
from .test_compat import COMPAT, cases
from .test_fuzz import dictionary  # noqa: F401 - the tiny model's dictionary fixture

DECODE = """
import sys, numpy as np
from clccodec import Codec
c = Codec(sys.argv[1], dictionary=sys.argv[2] if sys.argv[2] != "none" else False, device="cpu")
np.save(sys.argv[4], c.decode_pixels(open(sys.argv[3], "rb").read(), exact=True)[0])
"""


@pytest.fixture(scope="module")
def codec(tiny_model_path, dictionary):  # noqa: F811
    return Codec(tiny_model_path, dictionary=dictionary, device="cpu")


@pytest.fixture(scope="module")
def image():
    return synthetic_photo(96, 136, seed=3)


def test_plans():
    assert effort_plan(0, 3) == EffortPlan((0, 3), 0, by_cost=False)
    assert effort_plan(1, 3).refs == (0, 3) and effort_plan(1, 3).by_cost
    assert effort_plan(2, 3).refs == SELECTION_REFS and effort_plan(2, 7).refs == (*SELECTION_REFS, 7)
    assert all(effort_plan(e, 0).refs == (0,) for e in range(EFFORT_MAX + 1))  # --refs 0 stays off
    assert all(effort_plan(e, 3, fallback=False).refs == (3,) for e in range(EFFORT_MAX + 1))
    its = [effort_plan(e, 3).iterations for e in range(EFFORT_MAX + 1)]
    assert its[:3] == [0, 0, 0] and its[3:] == sorted(its[3:]) and its[3] > 0 and its[-1] == REFINE_ITERATIONS[9]
    with pytest.raises(ValueError):
        effort_plan(EFFORT_MAX + 1, 3)


def test_effort_zero_is_todays_encoder():
    shipped = Codec(device="cpu")
    name, case = cases("shipped")[0]
    data = shipped.encode(COMPAT / case["source"], case["quality"], case["refs"], effort=0)
    assert container.pack(container.unpack(data), version=1) == (COMPAT / name).read_bytes()


@pytest.mark.parametrize("effort", [1, 2, 3])
def test_effort_files_decode_in_a_fresh_process_to_the_encoders_pixels(codec, image, effort, tiny_model_path,
                                                                        dictionary, tmp_path):  # noqa: F811
    r = codec.encode_full(image, 4.0, 3, reconstruct=True, exact=True, effort=effort)
    f = container.unpack(r.data)
    assert f.num_refs == r.refs and r.refs in effort_plan(effort, 3).refs
    clc, npy = tmp_path / "a.clc", tmp_path / "a.npy"
    clc.write_bytes(r.data)
    subprocess.run([sys.executable, "-c", DECODE, str(tiny_model_path), str(dictionary), str(clc), str(npy)],
                   check=True, timeout=300)
    assert np.array_equal(np.load(npy), r.reconstruction)


def test_effort_zero_writes_the_smaller_of_the_files_with_and_without_references(codec, image):
    from clccodec.io.images import pad_to_multiple, to_tensor
    from clccodec.model.config import PAD_MULTIPLE

    x = pad_to_multiple(to_tensor(image), PAD_MULTIPLE)
    d = codec.dictionary
    indices = d.retrieve(codec.model, x, 3)
    for q in (1.0, 3.0, 5.0, 7.0):
        r = codec.encode_full(image, q, 3, reconstruct=True)
        sizes = {}
        for m in (0, 3):  # each count coded alone, as the plain encoder codes it
            streams, _ = codec.model.compress(x, q, d.values(indices) if m else None)
            f = container.unpack(r.data)
            (f.hyper, f.slices), f.ref_indices = (streams.hyper, streams.slices), indices[:m]
            f.dictionary_id = d.file_id if m else container.NO_DICTIONARY
            sizes[m] = len(container.pack(f))
        assert sizes[r.refs] == len(r.data) == min(sizes.values()), q
        assert np.array_equal(codec.decode_pixels(r.data)[0], r.reconstruction)  # the chosen file's pixels
        assert codec.encode(image, q, 3) == r.data  # reconstruct does not change the file
    assert codec.encode_full(image, 3.0, 0).refs == 0


def test_higher_effort_is_never_worse_in_real_cost(codec, image):
    q = 3.0

    def cost(data: bytes) -> float:
        return rd_cost(image, codec.decode_pixels(data)[0], len(data), q)

    base = cost(codec.encode(image, q, 3))
    for e in (1, 2, 4):
        assert cost(codec.encode(image, q, 3, effort=e)) <= base + 1e-12, e


def test_refinement_lowers_the_relaxed_loss_and_is_deterministic(shipped_codec, image):
    model = shipped_codec.model  # a trained model: the tiny random one's loss barely depends on its latents
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)[..., :64, :128]
    q = 4.0
    with torch.no_grad():
        y_s = model.scaled_latent(model.analyse(x, q), q)
    a = refine.refine_latents(model, x, y_s, q, None, 6, seed=5)
    b = refine.refine_latents(model, x, y_s, q, None, 6, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == y_s.shape and a[1].shape == model._hyper_analyse(y_s).shape
    assert not torch.equal(a[0], y_s)
    lam = 0.0130
    inv_gain = model.gains(torch.tensor([q]))[1].detach()

    def loss(ys, z):  # the objective with real rounding (straight-through): close to the real cost
        with torch.no_grad():
            return float(refine._relaxed_rd(model, x, ys, z, lam, inv_gain, torch.tensor([q]), None, 0.0,
                                             "ste"))

    assert loss(*a) < loss(y_s, model._hyper_analyse(y_s))


def test_refinement_in_tiles_covers_the_image(codec, monkeypatch):
    """A large image is refined tile by tile (here 64-pixel tiles with 64 of context on a 256x192 image)."""
    monkeypatch.setattr(refine, "TILE", 64)
    assert len(refine._tiles(256)) == 4 and len(refine._tiles(320)) == 5
    assert refine._tiles(192) == [(0, 192, 0, 192)]  # small enough for one tile with its context
    img = synthetic_photo(256, 192, seed=4)
    seen = []
    r = codec.encode_full(img, 3.0, 0, reconstruct=True, effort=3, progress=lambda d, t: seen.append((d, t)))
    total = REFINE_ITERATIONS[3] * 4
    assert seen[-1] == (total, total) and len(seen) == total
    assert np.array_equal(codec.decode_pixels(r.data)[0], r.reconstruction)


def test_interrupted_effort_encode_writes_nothing(codec, image, tmp_path):
    import clccodec

    dst = tmp_path / "out.clc"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        clccodec.encode_file(Image.fromarray(image), dst, 3.0, 0, model=codec.model, effort=3, progress=stop)
    assert not dst.exists() and not list(tmp_path.iterdir())


def test_bad_effort(codec, image):
    for e in (-1, 10, 2.5):
        with pytest.raises(UsageError, match="effort"):
            codec.encode_full(image, 3.0, effort=e)


def test_cli_effort(tmp_path, tiny_model_path, photo_png):
    out = tmp_path / "e.clc"
    r = run_clc("encode", str(photo_png), "-o", str(out), "--model", str(tiny_model_path), "--dict", "none",
                "--effort", "3")
    assert r.returncode == 0, r.stderr.decode()
    assert "effort 3" in r.stderr.decode()
    png = tmp_path / "e.png"
    assert run_clc("decode", str(out), "-o", str(png), "--model", str(tiny_model_path)).returncode == 0
    src = np.asarray(Image.open(photo_png).convert("RGB"))
    assert mse(np.asarray(Image.open(png).convert("RGB")), src) < mse(np.zeros_like(src), src)
    bad = run_clc("encode", str(photo_png), "--effort", "10", "--model", str(tiny_model_path))
    assert bad.returncode == 2 and "Invalid value for '--effort'" in bad.stderr.decode()  # as for --quality 9
