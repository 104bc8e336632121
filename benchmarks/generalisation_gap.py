#!/usr/bin/env python
"""Is the model short of data or of training? Crop loss on held-out photos against photos it trained on.

    python benchmarks/generalisation_gap.py OLD.pt NEW.pt --json benchmarks/results/generalisation_gap.json

For each weights file, the trainer's validation (256x256 centre crops, likelihood bpp, q 1/3/5/8, the rate-
distortion loss `clc train` logs as val_loss) on the held-out photos of the hash split and on a fixed random
sample of the training photos, both with M = 0 (a training photo's own crops sit in the reference bank, which
would flatter it). The two sets hold different photos, so their levels differ; what tells is how each moves
between an earlier and a later weights file: if training lowers the loss on the photos it sees much more than on
the held-out ones, the model is memorising its 604 photos and needs more data; if both fall alike, more steps
still pay.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def losses(weights: str, data: str, train_sample: int) -> dict:
    from clccodec.training.data import ImageSet
    from clccodec.training.trainer import Trainer, TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(TrainConfig(data=data, out=tmp, init=weights, device="cpu"))
        forward = tr.model.forward
        tr.model.forward = lambda x, q, ref_values=None, **kw: forward(x, q, None, **kw)  # M = 0
        held_out = tr.validate()
        pick = np.random.default_rng(0).choice(len(tr.train_set), train_sample, replace=False)
        tr.val_set = ImageSet([tr.train_set.names[i] for i in pick], [tr.train_set.images[i] for i in pick])
        return {"held_out": held_out, "training": tr.validate()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--train-sample", type=int, default=72, help="training photos to score (fixed seed)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = {}
    for w in a.weights:
        res[w] = losses(w, a.data, a.train_sample)
        print(w, {k: round(v["val_loss"], 4) for k, v in res[w].items()}, flush=True)
    first = res[a.weights[0]]
    print("| weights | held-out loss | change | training-photo loss | change |")
    print("|---|---:|---:|---:|---:|")
    for w, r in res.items():
        h, t = r["held_out"]["val_loss"], r["training"]["val_loss"]
        dh, dt = h / first["held_out"]["val_loss"] - 1, t / first["training"]["val_loss"] - 1
        print(f"| {w} | {h:.4f} | {100 * dh:+.2f} % | {t:.4f} | {100 * dt:+.2f} % |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
