#!/usr/bin/env python
"""What can the CLM's query find? A probe of the information in each candidate query source (docs/references.md).

    python benchmarks/attention_probe.py --model src/clccodec/shipped/clc-full.pt \
        --json benchmarks/results/refs/attention_probe_v4.json

The ideal reference is the image itself: at every latent position the matching value token is the position's
own. For each query source (the hyper features F_h alone, F_h plus the first decoded slice(s) of y_hat, with a
1x1 or 3x3 query kernel) a fresh float query/key pair is trained with a contrastive loss (InfoNCE) to pick
each position's own token among the 256 tokens of its 256x256 crop and the 512 of two other crops (T = 768, as
with M = 3 references), on random crops of the training split; then scored on the validation photos' centre
crops (the trainer's hash split; never Kodak): top-1 accuracy, the mean softmax weight of the right token, and
the cross-entropy against chance (log T). The model's own weights are only used to compute the inputs.
A source that stays at chance cannot make the attention pick matching content, whatever the training.
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
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.model.weights import load_weights  # noqa: E402
from clccodec.training.data import ImageSet  # noqa: E402

CROP = 256
OTHERS = 2  # other crops whose tokens are negatives: T = 3 x 256


@torch.no_grad()
def inputs(model, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F_h, the rounded scaled latent (the decoded slices, up to LRP and means) and the value tokens."""
    gain, _ = model.gains(q)
    y = model.g_a(x)
    y_s = y * gain
    z = model.h_a(y_s)
    med = model._z_medians()
    return model.h_s(torch.round(z - med) + med), torch.round(y_s), model.value_proj(y)


def probe(train: tuple, val: tuple, channels: int, kernel: int, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    feat_tr, y_tr, tok_tr = train

    def query_in(feat, y):
        return torch.cat([feat, y[:, :channels]], 1) if channels else feat

    qn = nn.Conv2d(query_in(feat_tr[:1], y_tr[:1]).shape[1], 64, kernel, padding=kernel // 2)
    kn = nn.Conv2d(tok_tr.shape[1], 64, 1)
    opt = torch.optim.Adam([*qn.parameters(), *kn.parameters()], lr=2e-3)

    def logits(feat, y, tok):
        B = feat.shape[0]
        q = qn(query_in(feat, y)).flatten(2).transpose(1, 2)
        k = kn(tok).flatten(2).transpose(1, 2)
        others = torch.tensor([[(i + j) % B for j in range(1, OTHERS + 1)] for i in range(B)])
        k = torch.cat([k, k[others].reshape(B, -1, k.shape[-1])], 1)
        return q @ k.transpose(1, 2) / 8

    for _ in range(steps):
        i = torch.randint(0, feat_tr.shape[0], (8,))
        lg = logits(feat_tr[i], y_tr[i], tok_tr[i])
        loss = F.cross_entropy(lg.flatten(0, 1), torch.arange(lg.shape[1]).repeat(8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        lg = logits(*val)
        tgt = torch.arange(lg.shape[1]).expand(lg.shape[0], -1)
        return {"top1": float((lg.argmax(-1) == tgt).float().mean()),
                "p_own": float(lg.softmax(-1).gather(-1, tgt[..., None]).mean()),
                "ce": float(F.cross_entropy(lg.flatten(0, 1), tgt.flatten())), "chance_ce": math.log(lg.shape[-1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "src" / "clccodec" / "shipped" / "clc-full.pt"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--batches", type=int, default=24, help="batches of 8 random training crops to train on")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_weights(args.model).eval()
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    tr, va = ImageSet.load(args.data, "train"), ImageSet.load(args.data, "val")
    parts = [inputs(model, tr.random_crops(rng, 8, CROP)[0], torch.rand(8) * 7 + 1) for _ in range(args.batches)]
    train = tuple(torch.cat(p) for p in zip(*parts))
    xv = torch.cat([va.center_crop(i, CROP).reshape(1, 3, CROP, CROP) for i in range(len(va))])
    val = inputs(model, xv, torch.full((len(va),), 3.0))
    print(f"inputs of {train[0].shape[0]} training and {len(va)} validation crops in {time.perf_counter() - t:.0f} s")
    s0, s1 = model.cfg.slices[:2]
    rows = []
    print("| query source | kernel | top-1 | weight of the right token | cross-entropy (chance) |")
    print("|---|---:|---:|---:|---:|")
    for name, channels in (("F_h", 0), ("F_h + slice 1", s0), ("F_h + slices 1-2", s0 + s1)):
        for kernel in (1, 3):
            r = {"source": name, "decoded_channels": channels, "kernel": kernel,
                 **probe(train, val, channels, kernel, args.steps, seed=0)}
            rows.append(r)
            print(f"| {name} | {kernel}x{kernel} | {r['top1']:.3f} | {r['p_own']:.3f} | {r['ce']:.2f} "
                  f"({r['chance_ce']:.2f}) |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "crop": CROP, "tokens": 256 * (1 + OTHERS),
                                               "steps": args.steps, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
