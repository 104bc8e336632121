#!/usr/bin/env python
"""Peer baseline: does our model learn as much per CPU hour as a stock CompressAI hyperprior?

    python benchmarks/peer_baseline.py run mbt  --minutes 45 --out runs/peer   # CompressAI mbt2018-mean
    python benchmarks/peer_baseline.py run ours --minutes 45 --out runs/peer   # our model, same lambda
    python benchmarks/peer_baseline.py report --out runs/peer                  # the comparison table

Both start from random weights on the same data (the training split of ../shared/data/train, the same
hash split, crops and sampling code as `clc train`), at one lambda (0.0067, quality 3), Adam at the same
learning rate, batch 8 of 128x128 crops, for the same training time (process CPU seconds by default, validation
not counted; --clock wall for wall time); run the two at once (one thread each, as the defaults do) so that
they share the machine alike. "mbt" is CompressAI's own `MeanScaleHyperprior`
(the mbt2018-mean architecture, N=128, M=192) with a minimal training loop; "ours" is the real trainer
(`clccodec.training.trainer.Trainer`, references included) with `quality=3`. Every --val-minutes each run
is validated on the held-out photos (256x256 centre crops; likelihood bpp, PSNR of the clamped
reconstruction; ours with M = 3 retrieved references) and the record is appended to OUT/NAME.jsonl with
its training seconds and wall seconds. Kodak is never used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_Q3 = 0.0067


def _log(path: Path, rec: dict) -> None:
    print(json.dumps(rec), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def run_mbt(args, log: Path) -> None:
    from compressai.models import MeanScaleHyperprior

    from clccodec.training.data import ImageSet

    train_set = ImageSet.load(args.data, "train", 0.05, 128)
    val_set = ImageSet.load(args.data, "val", 0.05, 256)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    net = MeanScaleHyperprior(N=128, M=192)
    aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    main_params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)

    def validate() -> dict:
        net.eval()
        bpps, mses = [], []
        with torch.no_grad():
            for i in range(len(val_set)):
                x = val_set.center_crop(i, 256)
                out = net(x)
                bpps.append(sum(-torch.log2(v).sum().item() for v in out["likelihoods"].values()) / (256 * 256))
                mses.append(out["x_hat"].clamp(0, 1).sub(x).pow(2).mean().item())
        net.train()
        return _val_record(bpps, mses)

    _loop(args, log, validate, lambda: _mbt_step(net, opt, aux_opt, main_params, train_set, rng, args.batch))


def _mbt_step(net, opt, aux_opt, main_params, train_set, rng, batch: int) -> None:
    x, _ = train_set.random_crops(rng, batch, 128)
    out = net(x)
    bpp = sum(-torch.log2(v).flatten(1).sum(1) for v in out["likelihoods"].values()) / (128 * 128)
    mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
    loss = (LAMBDA_Q3 * 255**2 * mse + bpp).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(main_params, 1.0)
    opt.step()
    aux = net.aux_loss()
    aux_opt.zero_grad(set_to_none=True)
    aux.backward()
    aux_opt.step()


def run_ours(args, log: Path) -> None:
    from clccodec.training.trainer import Trainer, TrainConfig

    cfg = TrainConfig(data=args.data, out=str(Path(args.out) / "ours_run"), config="full", steps=10**9,
                      batch=args.batch, crop=128, lr=args.lr, lr_decay_at=1.0, quality=3.0, val_every=10**9,
                      ckpt_every=10**9, log_every=10**9, seed=args.seed, device="cpu")
    tr = Trainer(cfg)
    tr._refresh_bank()

    def step() -> None:
        if tr.step and tr.step % cfg.refresh_every == 0:
            tr._refresh_bank()
        tr._train_step()
        tr.step += 1

    def validate() -> dict:
        v = tr.validate()
        q = v["q3"]
        return {"bpp": q["bpp"], "psnr": q["psnr"], "loss": round(v["val_loss"], 4)}

    _loop(args, log, validate, step)


def _val_record(bpps: list[float], mses: list[float]) -> dict:
    b = float(np.mean(bpps))
    return {"bpp": round(b, 4), "psnr": round(float(np.mean([-10 * math.log10(max(m, 1e-10)) for m in mses])), 3),
            "loss": round(LAMBDA_Q3 * 255**2 * float(np.mean(mses)) + b, 4)}


def _loop(args, log: Path, validate, step) -> None:
    # The budget is training time only (validation excluded), on the chosen clock: process CPU seconds are
    # robust to a shared, busy machine; wall seconds are what a user with an idle machine waits.
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    t0 = time.time()
    spent, steps, next_val = 0.0, 0, 0.0
    while True:
        if spent >= next_val or spent >= args.minutes * 60:
            _log(log, {"which": args.which, "step": steps, "wall_s": round(time.time() - t0, 1),
                       "train_s": round(spent, 1), "clock": args.clock, **validate()})
            next_val += args.val_minutes * 60
            if spent >= args.minutes * 60:
                return
        c = clock()
        step()
        spent += clock() - c
        steps += 1


def report(args) -> None:
    runs = {}
    for name in ("mbt", "ours"):
        p = Path(args.out) / f"{name}.jsonl"
        if p.exists():
            runs[name] = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    print("| run | training min (clock) | steps | wall min | val bpp | val PSNR dB | val loss (λ·255²·MSE + bpp) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, recs in runs.items():
        for r in recs:
            print(f"| {name} | {r['train_s'] / 60:.0f} ({r['clock']}) | {r['step']} | {r['wall_s'] / 60:.0f} | "
                  f"{r['bpp']:.4f} | {r['psnr']:.2f} | {r['loss']:.4f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("run", "report"))
    ap.add_argument("which", nargs="?", choices=("mbt", "ours"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--out", default="runs/peer")
    ap.add_argument("--minutes", type=float, default=45.0, help="training budget (validation not counted)")
    ap.add_argument("--val-minutes", type=float, default=9.0)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="what the budget counts: process CPU seconds (default; fair on a shared machine) or wall")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.mode == "report":
        report(args)
        return 0
    if args.which is None:
        ap.error("run needs mbt or ours")
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    log = Path(args.out) / f"{args.which}.jsonl"
    (run_mbt if args.which == "mbt" else run_ours)(args, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
