#!/usr/bin/env python
"""Why the RD curve flattens at the top of the quality ladder (issue #17): the quantisation step, or the
transforms?

    python benchmarks/high_rate.py --photos 12 --json benchmarks/results/high_rate_v7.json

On held-out training photos (the trainer's validation split, never Kodak; 512x512 centre crops, M = 0) the
float forward pass of the shipped model is run three ways at the top qualities:

* `coded`: the model as trained (rounded latent, likelihood bpp): the RD points the ladder gives;
* `finer step xK` at q = 8: the latent scaled by K more before rounding and K less after (a quantisation step K
  times finer than q 8's, with the entropy model unchanged): if PSNR keeps rising steeply with bpp, the top of
  the ladder is what stops the curve, not the transforms;
* `unquantised`: the synthesis of the unrounded scaled latent (q 8's gains): the most the analysis/synthesis
  pair can give at all; if it is close to `coded` q 8, the transforms (capacity or training) are the ceiling.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from clccodec.api import DEFAULT_MODEL
from clccodec.model.weights import load_weights
from clccodec.training.data import ImageSet


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return -10 * math.log10(max(float(x_hat.clamp(0, 1).sub(x).pow(2).mean()), 1e-12))


@torch.no_grad()
def run(model, x: torch.Tensor, q: float, finer: float = 1.0, quantise: bool = True) -> tuple[float, float]:
    """(bpp from the likelihoods, PSNR) of one forward pass with the quantisation step divided by `finer`."""
    qt = torch.tensor([q])
    gain, inv_gain = model.gains(qt)
    y = model.analyse(x, q)
    y_s = y * gain * finer
    z = model.h_a(y_s)
    _, z_lik = model.entropy_bottleneck(z)
    med = model._z_medians()
    z_hat = torch.round(z - med) + med
    feat, y_a, late = model._decoder_context(z_hat, None)
    y_hat_s, y_lik, y_a = model.entropy(y_s, feat, y_a, late)
    if not quantise:
        y_hat_s = y_s
    x_hat = model._synthesize(y_hat_s, y_a, inv_gain / finer, qt)
    pixels = x.shape[-2] * x.shape[-1]
    bpp = float(sum(-torch.log2(lik).sum() for lik in (y_lik, z_lik))) / pixels
    return bpp, psnr(x_hat, x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--json")
    args = ap.parse_args()
    model = load_weights(args.model).eval()
    val = ImageSet.load(args.data, "val", min_side=args.crop)
    n = min(args.photos, len(val))
    runs = [("coded", q, 1.0, True) for q in (5, 6, 7, 8)]
    runs += [(f"finer step x{k:g}", 8, k, True) for k in (1.5, 2, 3)]
    runs += [("unquantised", 8, 1.0, False)]
    rows = []
    for name, q, k, quantise in runs:
        res = [run(model, val.center_crop(i, args.crop), q, k, quantise) for i in range(n)]
        bpp = sum(r[0] for r in res) / n
        p = sum(r[1] for r in res) / n
        rows.append({"variant": name, "quality": q, "finer": k, "bpp": bpp, "psnr": p})
        print(f"{name:18s} q {q}  bpp {bpp:.4f}  PSNR {p:.2f} dB", flush=True)
    # the slope of the curve (dB per doubling of the rate) between neighbouring points
    for a, b in zip(rows, rows[1:]):
        if b["variant"] != "unquantised":
            b["db_per_rate_doubling"] = (b["psnr"] - a["psnr"]) / math.log2(b["bpp"] / a["bpp"])
    print("\n| variant | q | bpp | PSNR dB | dB per doubling of the rate (from the row above) |\n|---|---:|---:|---:|---:|")
    for r in rows:
        slope = f"{r['db_per_rate_doubling']:.2f}" if "db_per_rate_doubling" in r else "–"
        print(f"| {r['variant']} | {r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {slope} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "photos": val.names[:n], "crop": args.crop, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
