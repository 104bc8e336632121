#!/usr/bin/env python
"""Where a training step's time goes, part by part, and crops/s of the whole step (CPU or GPU).

    python benchmarks/train_profile.py                       # shipped weights, batch 8, crop 128, 2 threads
    python benchmarks/train_profile.py --batch 16 --crop 256 --json train_profile.json
    python benchmarks/train_profile.py --no-amp              # float32 transforms instead of bf16 autocast
    python benchmarks/train_profile.py --data photos/ --model tiny.pt --photos 2 --batch 1 --crop 64 --refs 1 \
        --repeat 1 --steps 1 --threads 1                   # smoke run (photos of at least 256 x 256)

Each part is timed on its own, forward + backward, on the tensors a real step feeds it (median of --repeat
runs after a warm-up): data sampling, reference retrieval (SPP + FAISS) and value gather, g_a, h_a with the
entropy bottleneck, h_s (fixed-point fake quantisation), the CLM (attention + alignment), the slice entropy
model, CLS fusion + g_s, and the optimiser step. Then whole steps of the real trainer (Trainer.train_step)
are timed: the parts should roughly sum to it. Pass --photos to change how many training photos are loaded
(a subset is enough: the step does not depend on how many there are).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


CLOCK = time.perf_counter  # --cpu-time switches to process CPU time (all threads): steadier on a busy machine


def timed(fn, repeat: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitive cache)
    ts = []
    for _ in range(repeat):
        t = CLOCK()
        fn()
        ts.append(CLOCK() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--model", default=str(ROOT / "src" / "clccodec" / "shipped" / "clc-full.pt"))
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--refs", type=int, default=3, help="references per crop for the CLM/retrieval parts")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="whole trainer steps to time")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast (default: the trainer's choice: only where bf16 is native)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="the trainer's --compile (whole steps only)")
    ap.add_argument("--cpu-time", action="store_true", help="measure process CPU seconds instead of wall seconds "
                    "(with --threads 1 on a machine busy with other work: the wall clock there measures the others)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time

    from clccodec.model.reference import values_to_tokens
    from clccodec.training.config import TrainConfig
    from clccodec.training.trainer import Trainer, rd_loss

    photos = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp, "photos")
        sub.mkdir()
        for p in photos[: args.photos]:
            os.symlink(p.resolve(), sub / p.name)
        cfg = TrainConfig(data=str(sub), out=str(Path(tmp, "run")), init=args.model, batch=args.batch,
                          crop=args.crop, device=args.device, amp=args.amp, val_fraction=0.0, compile=args.compile)
        tr = Trainer(cfg)
        model, dev = tr.model.train(), tr.device
        tr.bank.refresh(copy.deepcopy(model.g_a).eval(), dev, tr.amp)  # as the trainer does every refresh_every steps
        args.amp = getattr(tr, "amp", args.amp)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        ac = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp)  # noqa: E731

        x, src = tr.train_set.random_crops(tr.rng, args.batch, args.crop)
        x = x.to(dev).contiguous(memory_format=torch.channels_last)
        q = torch.rand(args.batch, device=dev) * 7 + 1
        gain, inv_gain = model.gains(q)
        with torch.no_grad(), ac():
            y = model.g_a(x).float()
        y_s = (y * gain).detach()
        idx = tr.bank.retrieve(y, args.refs, src)
        with torch.no_grad():
            refs = tr.bank.values(model.value_proj, idx)
            z = model.h_a(y_s)
            z_hat = model.entropy_bottleneck(z, training=False)[0].detach()  # rounded around the medians
            feat = model.h_s(z_hat).detach()
            tokens = values_to_tokens(refs).detach()
            y_a = model.clm(feat, tokens).detach()
            y_hat_s, _, _ = model.entropy(y_s, feat, y_a)

        def run(f):
            def go():
                out = f()
                out.float().sum().backward()
                model.zero_grad(set_to_none=True)
                sync()
            return go

        def step_opt():
            for p in tr.main_params:
                p.grad = torch.zeros_like(p)
            tr.opt.step()
            tr.opt.zero_grad(set_to_none=True)

        parts = {
            "data (random crops)": lambda: tr.train_set.random_crops(tr.rng, args.batch, args.crop),
            "retrieval (SPP+FAISS) + values": lambda: tr.bank.values(model.value_proj,
                                                                     tr.bank.retrieve(y, args.refs, src)),
            "g_a": run(lambda: _ac(ac, lambda: model.g_a(x))),
            "h_a + entropy bottleneck": run(lambda: model.entropy_bottleneck(model.h_a(y_s))[1].log()),
            "h_s (fixed point)": run(lambda: model.h_s(z_hat)),
            "CLM (attention + alignment)": run(lambda: model.clm(feat, tokens)),
            "slice entropy model + LRP": run(lambda: sum(t.float().sum() for t in model.entropy(y_s, feat, y_a))),
            "CLS fusion + g_s": run(lambda: _ac(ac, lambda: model.g_s(model.fusion(y_hat_s * inv_gain.detach(), y_a)))),
            "loss (RD)": lambda: rd_loss({"x_hat": x, "likelihoods": {"y": torch.rand_like(y).clamp_min(1e-3)}}, x, q),
            "optimiser (Adam + clip)": step_opt,
        }
        res = {}
        for name, fn in parts.items():
            res[name] = timed(fn, args.repeat)
            print(f"{name:34s} {1000 * res[name]:8.1f} ms", flush=True)
        total_parts = sum(res.values())
        tr.train_step()  # warm-up
        sync()
        t = CLOCK()
        for _ in range(args.steps):
            tr.train_step()
        sync()
        step = (CLOCK() - t) / args.steps
        print(f"{'sum of parts':34s} {1000 * total_parts:8.1f} ms")
        print(f"{'whole trainer step':34s} {1000 * step:8.1f} ms  ->  {args.batch / step:.1f} crops/s "
              f"({1 / step:.2f} steps/s; batch {args.batch}, crop {args.crop}, amp {args.amp}, "
              f"{torch.get_num_threads()} threads, {dev}, {'CPU' if args.cpu_time else 'wall'} seconds)")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "config": vars(args), "threads": torch.get_num_threads(),
                "parts_ms": {k: round(1000 * v, 2) for k, v in res.items()},
                "clock": "cpu" if args.cpu_time else "wall", "step_ms": round(1000 * step, 2),
                "crops_per_s": round(args.batch / step, 2)}, indent=1) + "\n")


def _ac(ac, f):
    with ac():
        return f()


if __name__ == "__main__":
    sys.exit(main())
