"""Training: exact resume, a validation split that is not Kodak, and export into a weights file that codes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from clccodec.errors import UsageError
from clccodec.training.data import is_validation, training_images
from clccodec.model.quality import lambda_for_quality
from clccodec.training.trainer import TrainConfig, Trainer, quality_weight, rd_loss, train

from .conftest import run_clc, synthetic_photo


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i in range(8):
        Image.fromarray(synthetic_photo(80, 96, seed=i)).save(d / f"photo{i}.png")
    return d


def _cfg(data: Path, out: Path, steps: int) -> TrainConfig:
    # lr_decay_at=1 keeps one learning rate, so a run to 3 steps resumed to 6 must equal one run to 6
    return TrainConfig(data=str(data), out=str(out), config="tiny", steps=steps, batch=2, crop=64, ref_crop=64,
                       ref_per_image=1, refs_max=2, p_no_refs=0.3, refresh_every=2, val_every=4, val_crop=64,
                       ckpt_every=100, log_every=1, lr_decay_at=1.0, device="cpu", amp=False, val_fraction=0.25)


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_resume_is_exact(photos, tmp_path):
    train(_cfg(photos, tmp_path / "straight", 6))
    train(_cfg(photos, tmp_path / "resumed", 3))
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["step"] == 3
    train(_cfg(photos, tmp_path / "resumed", 6))
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "resumed" / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    vals = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in vals] == [4, 6], "validation every 4 steps and always at the final step"
    assert all(np.isfinite(r["val_loss"]) and r["q1"]["bpp"] < r["q8"]["bpp"] for r in vals)
    assert (tmp_path / "straight" / "best.pt").exists()


def test_training_moves_the_weights(photos, tmp_path):
    train(_cfg(photos, tmp_path / "a", 2))
    first = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    train(_cfg(photos, tmp_path / "a", 4))
    second = _weights(tmp_path / "a" / "last.pt")
    assert any(not torch.equal(first["model"][k], second[k]) for k in second)


def test_split_is_stable_and_refuses_kodak(photos, tmp_path):
    names = [p.name for p in training_images(photos)]
    assert [is_validation(Path(n), 0.25) for n in names] == [is_validation(Path(n), 0.25) for n in names]
    Image.fromarray(synthetic_photo(64, 64)).save(tmp_path / "kodim01.png")
    with pytest.raises(UsageError, match="Kodak"):
        training_images(tmp_path)


def test_exported_weights_code_an_image(photos, tmp_path):
    import clccodec
    from clccodec.format.ids import file_id

    train(_cfg(photos, tmp_path / "run", 2))
    (tmp_path / "w.pt").write_bytes(b"keep me")
    args = ("export-weights", str(tmp_path / "run" / "last.pt"), "-o", str(tmp_path / "w.pt"))
    r = run_clc(*args)
    assert r.returncode == 2 and "exists (use --force" in r.stderr.decode()
    assert (tmp_path / "w.pt").read_bytes() == b"keep me"
    r = run_clc(*args, "--force")
    assert r.returncode == 0, r.stderr.decode()
    model_id = bytes.fromhex(r.stdout.decode().split("model id")[1].strip())
    img = Image.fromarray(synthetic_photo(48, 40, seed=3))
    data = clccodec.encode(img, quality=4, model=tmp_path / "w.pt", refs=0)
    assert clccodec.read_info(data)["model_id"] == file_id(model_id).hex()  # .clc headers carry 4 bytes
    assert clccodec.decode(data, model=tmp_path / "w.pt").size == (40, 48)


def test_learning_rate_schedules():
    def lr(step: int, **kw) -> float:
        return Trainer._lr(SimpleNamespace(cfg=TrainConfig(steps=100, lr=1.0, **kw), step=step))

    assert [lr(s, lr_decay_at=0.5) for s in (0, 49, 50, 99)] == [1.0, 1.0, 0.1, 0.1]
    assert [lr(s, warmup=4) for s in (0, 3, 4)] == [0.25, 1.0, 1.0]
    cos = [lr(s, schedule="cosine", warmup=10) for s in (0, 9, 10, 55, 100, 150)]
    assert cos[:3] == [0.1, 1.0, 1.0] and cos[3] == pytest.approx(0.505) and cos[4] == cos[5] == pytest.approx(0.01)
    with pytest.raises(UsageError, match="schedule"):
        train(TrainConfig(schedule="linear", data="unused"))
    tail = [lr(s, anneal=20) for s in (0, 79, 80, 90, 100, 120)]  # flat (no 10x drop), then a cosine to lr/100
    assert tail[:3] == [1.0, 1.0, 1.0] and tail[3] == pytest.approx(0.505) and tail[4] == tail[5] == pytest.approx(0.01)
    with pytest.raises(UsageError, match="--anneal 200"):
        train(TrainConfig(anneal=200, steps=100, data="unused"))


def test_q_power_draws_the_low_qualities_more_often():
    def draws(power: float) -> np.ndarray:
        fake = SimpleNamespace(cfg=TrainConfig(batch=20_000, q_power=power), rng=np.random.default_rng(0))
        return Trainer._sample_quality(fake).numpy()

    even, low = draws(1.0), draws(2.0)
    assert 1.0 <= low.min() and low.max() <= 8.0
    assert np.median(even) == pytest.approx(4.5, abs=0.1)  # 1 + 7 * 0.5
    assert np.median(low) == pytest.approx(2.75, abs=0.1)  # 1 + 7 * 0.5 ** 2
    with pytest.raises(UsageError, match="q-power"):
        train(TrainConfig(q_power=0, data="unused"))


def test_q_balance_weighs_each_crops_loss_by_its_lambda():
    x = torch.rand(2, 3, 16, 16)
    out = {"x_hat": x + 0.05, "likelihoods": {"y": torch.full((2, 4, 2, 2), 0.5)}}  # same MSE and bpp for both
    q = torch.tensor([1.0, 8.0])
    plain, bpp, mse, same = rd_loss(out, x, q)
    assert same == plain and bpp.item() == pytest.approx(16 / 256)
    per_sample = lambda_for_quality(q) * 255**2 * mse + bpp
    assert plain.item() == pytest.approx(per_sample.mean().item(), rel=1e-5)
    _, _, _, weighted = rd_loss(out, x, q, balance=0.5)
    w = quality_weight(q, 0.5)
    assert w[0].item() == pytest.approx(10 ** 0.5, rel=1e-3) and w[1].item() == pytest.approx(10 ** -0.5, rel=1e-3)
    assert weighted.item() == pytest.approx((per_sample * w).mean().item(), rel=1e-5)
    with pytest.raises(UsageError, match="q-balance"):
        train(TrainConfig(q_balance=-1, data="unused"))


def test_hard_rate_trains_on_the_rate_the_coder_spends(photos, tmp_path):
    from clccodec.model.network import CLCModel
    from clccodec.model.config import TINY

    torch.manual_seed(0)
    model, x, q = CLCModel(TINY), torch.rand(2, 3, 64, 64), torch.tensor([2.0, 6.0])
    with torch.no_grad():
        coded = model.eval()(x, q)["likelihoods"]["y"]  # eval: the likelihoods of the rounded latent
    model.train()
    noisy = model(x, q)["likelihoods"]["y"]
    out = model(x, q, hard_rate=True)
    hard = out["likelihoods"]["y"]
    assert torch.allclose(hard, coded) and not torch.allclose(noisy, coded)  # no noise: the coded rate
    (-hard.log2().sum()).backward()
    assert model.g_a[0].weight.grad.abs().sum() > 0  # the encoder learns from it (straight-through)
    cfg = _cfg(photos, tmp_path / "hard", 2)
    cfg.hard_rate = True
    train(cfg)
    assert json.loads((tmp_path / "hard" / "log.jsonl").read_text().splitlines()[-1])["step"] == 2


def test_ema_resumes_exactly_and_is_what_best_holds(photos, tmp_path):
    def cfg(out: str, steps: int) -> TrainConfig:
        c = _cfg(photos, tmp_path / out, steps)
        c.ema, c.quality, c.val_every = 0.5, 4.0, 100  # validated once, at the final step: best.pt is that step
        return c

    train(cfg("straight", 6))
    train(cfg("resumed", 3))
    train(cfg("resumed", 6))
    a, b = (torch.load(tmp_path / r / "last.pt", weights_only=False) for r in ("straight", "resumed"))
    assert a["ema"].keys() == b["ema"].keys() and all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    best = _weights(tmp_path / "straight" / "best.pt")
    assert all(torch.equal(best[k], a["ema"][k]) for k in a["ema"]), "best.pt holds the averaged weights"
    assert any(not torch.equal(a["ema"][k], a["model"][k]) for k in a["ema"]), "the average lags the live weights"
    from clccodec.training.export import export_checkpoint

    ids = {export_checkpoint(tmp_path / "straight" / f, tmp_path / f"{f}.clcw") for f in ("last.pt", "best.pt")}
    assert len(ids) == 1, "last.pt exports its averaged weights, the same as best.pt of that step"
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    vals = [r for r in log if "val_loss" in r]
    assert vals and all(set(k for k in r if k.startswith("q")) == {"q4"} for r in vals), "one quality: one lambda"


def test_related_references_start_with_the_crops_own_photo(photos):
    from clccodec.model.network import CLCModel
    from clccodec.model.config import TINY
    from clccodec.training.data import ImageSet
    from clccodec.training.refbank import ReferenceBank

    images = ImageSet.load(photos, "train", 0.0, 64)
    bank = ReferenceBank(images, crop=64, per_image=2)
    g_a = CLCModel(TINY).g_a.eval()
    bank.refresh(g_a, torch.device("cpu"), amp=False)
    x, src = images.random_crops(np.random.default_rng(0), 4, 64)
    with torch.no_grad():
        y = g_a(x)
    plain = bank.retrieve(y, 3, src)
    related = bank.retrieve(y, 3, src, related=True)
    for b in range(4):
        assert all(bank.src[j] != src[b] for j in plain[b])  # never the crop's own photo by default
        assert [bank.src[j] for j in related[b][:2]] == [src[b], src[b]]  # its 2 bank crops first
        assert bank.src[related[b][2]] != src[b]


def test_training_with_related_references_runs_and_logs_the_share(photos, tmp_path):
    cfg = _cfg(photos, tmp_path / "rel", 4)
    cfg.p_related, cfg.p_no_refs = 1.0, 0.0
    train(cfg)
    log = [json.loads(line) for line in (tmp_path / "rel" / "log.jsonl").read_text().splitlines()]
    assert [r["related"] for r in log if "related" in r] == [1.0] * 4


def test_overlap_windows_contain_their_crop_flipped_alike(photos):
    from clccodec.training.data import ImageSet

    images = ImageSet.load(photos, "train", 0.0, 64)
    rng = np.random.default_rng(5)
    boxes = images.random_boxes(rng, 16, 32)
    crops = images.cut(boxes)
    wins = images.windows_around(rng, boxes, 64)
    offsets = set()
    for c, w in zip(crops, wins):
        hits = [(dy, dx) for dy in range(33) for dx in range(33) if torch.equal(w[:, dy:dy + 32, dx:dx + 32], c)]
        assert hits, "the window holds the crop, in the same orientation"
        offsets.add(hits[0])
    assert len(offsets) > 1  # placed at random, not always at the crop's own origin
    jittered = images.windows_around(np.random.default_rng(5), boxes, 64, jitter=0.1)
    assert 0 <= float(jittered.min()) and float(jittered.max()) <= 1 and not torch.equal(jittered, wins)
    # crops larger than the reference windows (e.g. --crop 512 with 256-px references): the window lies inside
    big = images.random_boxes(rng, 8, 64)
    for c, w in zip(images.cut(big), images.windows_around(rng, big, 32)):
        assert any(torch.equal(c[:, dy:dy + 32, dx:dx + 32], w) for dy in range(33) for dx in range(33))


def test_training_with_overlapping_references_runs_and_logs_the_share(photos, tmp_path):
    cfg = _cfg(photos, tmp_path / "ovl", 4)
    cfg.p_overlap, cfg.p_no_refs = 1.0, 0.0  # (64-px windows of 64-px crops: the crop itself, jittered)
    train(cfg)
    log = [json.loads(line) for line in (tmp_path / "ovl" / "log.jsonl").read_text().splitlines()]
    assert [r["overlap"] for r in log if "overlap" in r] == [1.0] * 4
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)


def test_null_prior_switches_on_over_existing_weights_and_exports(photos, tmp_path, tiny_model_path):
    from clccodec.model.weights import load_weights

    cfg = _cfg(photos, tmp_path / "np", 2)
    cfg.init, cfg.null_prior = str(tiny_model_path), True
    train(cfg)
    r = run_clc("export-weights", str(tmp_path / "np" / "best.pt"), "-o", str(tmp_path / "np.pt"))
    assert r.returncode == 0, r.stderr.decode()
    start, out = load_weights(tiny_model_path), load_weights(tmp_path / "np.pt")
    assert not start.cfg.null_prior and out.cfg.null_prior
    assert out.clm.null_prior and out.model_id != start.model_id


def test_rate_scales_switch_on_in_a_running_campaign_and_export(photos, tmp_path):
    """A run resumed with rate_scales: the scales start at 1 (log 0) in their own faster Adam group, move, the run
    resumes with them, and the exported weights code a file with them."""
    from clccodec import Codec
    from clccodec.model.weights import load_weights

    train(_cfg(photos, tmp_path / "rs", 2))
    on = _cfg(photos, tmp_path / "rs", 4)
    on.rate_scales = True
    train(on)
    st = torch.load(tmp_path / "rs" / "last.pt", weights_only=False)
    assert st["step"] == 4 and st["model"]["log_scale_a"].abs().max() > 0
    assert len(st["opt"]["param_groups"]) == 2 and st["opt"]["param_groups"][1]["lr_mult"] > 1
    from clccodec.training.trainer import RATE_SCALE_LR_MAX

    assert st["opt"]["param_groups"][1]["lr"] == min(on.lr * st["opt"]["param_groups"][1]["lr_mult"], RATE_SCALE_LR_MAX)
    on.steps = 6
    train(on)
    assert torch.load(tmp_path / "rs" / "last.pt", weights_only=False)["step"] == 6
    r = run_clc("export-weights", str(tmp_path / "rs" / "last.pt"), "-o", str(tmp_path / "rs.pt"))
    assert r.returncode == 0, r.stderr.decode()
    model = load_weights(tmp_path / "rs.pt")
    assert model.cfg.rate_scales and model.log_scale_s.abs().max() > 0
    codec = Codec(tmp_path / "rs.pt", dictionary=False, device="cpu")
    res = codec.encode_full(synthetic_photo(64, 64, seed=1), quality=2.5, refs=0, reconstruct=True, exact=True)
    assert np.array_equal(codec.decode_pixels(res.data, exact=True)[0], res.reconstruction)


def test_train_only_moves_just_the_named_modules(photos, tmp_path, tiny_model_path):
    cfg = _cfg(photos, tmp_path / "only", 3)
    cfg.init, cfg.train_only, cfg.p_no_refs = str(tiny_model_path), "clm,value_proj", 0.0
    train(cfg)
    start, after = _weights_of(tiny_model_path), _weights(tmp_path / "only" / "last.pt")
    moved = {k.split(".")[0] for k in after if not torch.equal(start[k].float(), after[k].float())}
    assert moved and moved <= {"clm", "value_proj", "entropy_bottleneck"}, moved
    assert "clm" in moved
    cfg.train_only, cfg.out = "clm,nonsense", str(tmp_path / "bad")
    with pytest.raises(UsageError, match="--train-only: no module 'nonsense'"):
        train(cfg)


def _weights_of(weights_file: Path) -> dict:
    from clccodec.model.weights import load_weights

    return {k: v.detach() for k, v in load_weights(weights_file).state_dict().items()}


def test_late_references_and_the_matching_loss_train_and_export(photos, tmp_path, tiny_model_path):
    """--query-slices over existing weights plus --match-weight: the matching loss is logged, trains the CLM's
    query (its new inputs leave zero), and the exported weights carry the setting and code an image."""
    from clccodec import Codec

    cfg = _cfg(photos, tmp_path / "late", 3)
    cfg.init, cfg.query_slices, cfg.match_weight, cfg.p_no_refs = str(tiny_model_path), 1, 1.0, 0.0
    train(cfg)
    logs = [json.loads(line) for line in (tmp_path / "late" / "log.jsonl").read_text().splitlines()]
    matches = [r["match"] for r in logs if "match" in r]
    assert len(matches) == 3 and all(math.isfinite(v) and v > 0 for v in matches)
    after = _weights(tmp_path / "late" / "last.pt")
    feat = _weights_of(tiny_model_path)["clm.query.weight"].shape[1]
    assert after["clm.query.weight"][:, feat:].abs().sum() > 0  # the decoded slices' weights moved off zero
    r = run_clc("export-weights", str(tmp_path / "late" / "best.pt"), "-o", str(tmp_path / "late.pt"))
    assert r.returncode == 0, r.stderr.decode()
    codec = Codec(tmp_path / "late.pt", dictionary=False)
    assert codec.model.cfg.query_slices == 1
    img = synthetic_photo(70, 90, seed=3)
    res = codec.encode_full(img, quality=3, refs=0, reconstruct=True, exact=True)
    assert np.array_equal(codec.decode_pixels(res.data, exact=True)[0], res.reconstruction)


def test_ddp_on_two_cpu_processes_trains_and_resumes(photos, tmp_path):
    """torchrun with gloo: ranks draw their own reference counts (unused parameters on some ranks), the auxiliary
    parameter is synced by hand, and a resumed run goes on from rank 0's checkpoint."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import sys\nfrom clccodec.training.trainer import TrainConfig, train\n"
        f"train(TrainConfig(data={str(photos)!r}, out={str(tmp_path / 'run')!r}, config='tiny', steps=int(sys.argv[1]), "
        "batch=2, crop=64, ref_crop=64, ref_per_image=1, refs_max=2, p_no_refs=0.5, refresh_every=2, val_every=2, "
        "val_crop=64, log_every=1, device='cpu', amp=False, val_fraction=0.25, max_minutes=float(sys.argv[2])))\n")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    # the last run's time limit passes at once: rank 0's clock stops both ranks after one step
    for steps, minutes, reached in ((4, 0, 4), (6, 0, 6), (100, 1e-9, 7)):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            str(script), str(steps), str(minutes)], capture_output=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == reached
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert {r["world"] for r in log if r.get("event") == "start"} == {2}
    assert [r["step"] for r in log if "val_loss" in r] == [2, 4, 6]
    assert log[-1] == {**log[-1], "event": "time limit", "step": 7}
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)


def test_a_checkpoint_with_other_cdf_sizes_loads_into_shipped_style_weights(tiny_model_path):
    # resuming a run with --init: the model comes from a weights file, the checkpoint's entropy-coder tables may
    # be longer or shorter (its quantiles moved since those weights were exported)
    from clccodec.model.weights import load_weights

    model = load_weights(tiny_model_path)
    state = model.state_dict()
    for name, grow in (("entropy_bottleneck._quantized_cdf", 3), ("entropy.gaussian._quantized_cdf", -2)):
        t = state[name]
        state[name] = torch.arange(t.shape[0] * (t.shape[1] + grow), dtype=t.dtype).reshape(t.shape[0], -1)
    model.load_state_dict(state)
    for name in ("entropy_bottleneck._quantized_cdf", "entropy.gaussian._quantized_cdf"):
        assert torch.equal(model.state_dict()[name], state[name])


def test_crop_min_keeps_small_photos_and_cuts_each_batch_at_what_its_photos_hold(tmp_path):
    from clccodec.training.data import ImageSet

    for i in range(8):  # short sides 80 and 140: 64 and 128 px crops fit
        Image.fromarray(synthetic_photo(*((80, 120) if i % 2 else (140, 150)), seed=i)).save(tmp_path / f"p{i}.png")
    images = ImageSet.load(tmp_path, "train", 0.0, 64)
    small = {i for i, im in enumerate(images.images) if min(im.shape[:2]) < 128}
    assert len(small) == 4
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(40):
        boxes = images.random_boxes(rng, 2, 128, 64)
        assert {b.size for b in boxes} == {64 if small & {b.image for b in boxes} else 128}, \
            "one size per batch: the largest that all its photos hold"
        assert images.cut(boxes).shape[-1] == boxes[0].size
        sizes.add(boxes[0].size)
    assert sizes == {64, 128}

    cfg = _cfg(tmp_path, tmp_path / "run", 4)
    cfg.crop, cfg.crop_min = 128, 64
    tr = Trainer(cfg)
    assert any(min(im.shape[:2]) < 128 for im in tr.train_set.images), "photos down to --crop-min train too"
    tr.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    cfg = _cfg(tmp_path, tmp_path / "fixed", 1)
    cfg.crop = 128
    assert all(min(im.shape[:2]) >= 128 for im in Trainer(cfg).train_set.images), "without it they are left out"


def test_a_signal_stops_training_after_its_step_with_a_checkpoint(photos, tmp_path, monkeypatch):
    """SIGINT mid-run: the step finishes, last.pt holds it, the log says why, the handlers are given back, and the
    same config resumes to the end."""
    import os
    import signal

    from clccodec.training.trainer import Trainer

    step = Trainer.train_step

    def interrupted_at_two(self):
        rec = step(self)
        if self.step == 1:  # the second step: run() counts it after this returns
            os.kill(os.getpid(), signal.SIGINT)
        return rec

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_two)
    before = signal.getsignal(signal.SIGINT)
    assert train(_cfg(photos, tmp_path / "run", 6)) == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {**log[-1], "event": "interrupted", "signal": "SIGINT", "step": 2}
    monkeypatch.setattr(Trainer, "train_step", step)
    assert train(_cfg(photos, tmp_path / "run", 6)) == "done"
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 6


def test_clc_train_stopped_by_sigterm_exits_143_with_a_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    big = tmp_path / "photos"  # at least the default reference crop (256), which `clc train` does not expose
    big.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_photo(256, 272, seed=i)).save(big / f"photo{i}.png")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "clccodec", "train", str(big), "--out", str(out), "--config", "tiny",
            "--steps", "100000", "--batch", "1", "--crop", "64", "--val-every", "100000", "--refresh-every", "1",
            "--no-amp"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "log.jsonl"
    deadline = time.time() + 300
    while proc.poll() is None and not (log.exists() and '"start"' in log.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr.decode()
    assert "stopped by SIGTERM; checkpoint saved in" in stderr.decode()
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["event"] == "interrupted" and last["signal"] == "SIGTERM"
    assert torch.load(out / "last.pt", weights_only=False)["step"] == last["step"] >= 1


def test_compiled_transforms_train_like_eager_ones(photos, tmp_path):
    """--compile: g_a and g_s go through torch.compile; two steps from the same start land where eager ones do, up
    to float reordering (inductor fuses ops: not bit for bit), far closer than the steps moved the weights."""
    runs = {name: _cfg(photos, tmp_path / name, steps) for name, steps in (("start", 0), ("eager", 2), ("compiled", 2))}
    runs["compiled"].compile = True
    assert [train(cfg) for cfg in runs.values()] == ["done"] * 3
    w = {name: _weights(tmp_path / name / "last.pt") for name in runs}
    keys = [k for k in w["start"] if w["start"][k].is_floating_point()]

    def dist(a: dict, b: dict) -> float:
        return math.sqrt(sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in keys))

    assert dist(w["compiled"], w["eager"]) < 0.01 * dist(w["eager"], w["start"])


def test_every_training_option_is_declared_once_and_reaches_the_trainer(photos, tmp_path):
    """clc train's options are TrainConfig's fields (their defaults and help texts), and what the command line
    sets arrives in the config the trainer runs."""
    import dataclasses

    from clccodec.cli.training import train as train_command

    exposed = {f.name: f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata}
    params = train_command.__signature__.parameters
    assert set(params) == {"data"} | set(exposed)
    assert all(params[n].default == f.default for n, f in exposed.items())
    help_text = run_clc("train", "--help").stdout.decode()
    assert "--downscale-glob" in help_text and "--amp / --no-amp" in help_text and "--refresh-every" in help_text
    with pytest.raises(UsageError, match="no training photos"):
        train(TrainConfig())
    r = run_clc("train", str(photos), "--out", str(tmp_path / "run"), "--config", "tiny", "--steps", "1",
                "--batch", "2", "--crop", "64", "--q-balance", "-1")
    assert r.returncode == 2 and "q-balance" in r.stderr.decode()
