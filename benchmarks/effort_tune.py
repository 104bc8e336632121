#!/usr/bin/env python
"""Tune latent refinement (effort.py) on training photos, never Kodak: real cost before and after.

    python benchmarks/effort_tune.py --images 4 --crop 384 --quality 2 4 --iterations 12 \
        --config sga:0.05 ste:0.05 noise:0.05

For each crop (the centre of the first --images photos of ../shared/data/train_extra), quality and config
(relaxation:learning-rate), the latents are refined for --iterations steps and coded for real (M = 0); printed:
the mean change of the real cost lambda * 255^2 * MSE + bpp, of the bytes and of the PSNR against the plain
encoder, and seconds per iteration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train_extra"))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--crop", type=int, default=384)
    ap.add_argument("--quality", type=float, nargs="+", default=[2.0, 4.0])
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--config", nargs="+", default=["sga:0.05", "ste:0.05", "noise:0.05"])
    ap.add_argument("--json")
    args = ap.parse_args()

    from clccodec.api import Codec
    from clccodec.effort import rd_cost
    from clccodec.refine import refine_latents
    from clccodec.evaluation.metrics import psnr
    from clccodec.imageio import to_pixels, to_tensor

    codec = Codec(dictionary=False)
    model = codec.model
    paths = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.images]
    crops = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        c = args.crop
        crops.append(np.asarray(im.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c))))

    def real(y_s, z, q, img):
        streams, x_hat = model.code_latents(y_s, z, q, None, True)
        nbytes = len(streams.hyper) + sum(len(s) for s in streams.slices)
        pix = to_pixels(x_hat)
        return rd_cost(img, pix, nbytes, q), nbytes, psnr(img, pix)

    rows = []
    for cfg in args.config:
        mode, lr, *tau = cfg.split(":")  # relaxation:lr[:starting temperature]
        d_cost, d_bytes, d_psnr, secs = [], [], [], 0.0
        for img in crops:
            x = to_tensor(img)
            for q in args.quality:
                with torch.no_grad():
                    y_s = model.scaled_latent(model.analyse(x, q), q)
                    z = model._hyper_analyse(y_s)
                    c0, b0, p0 = real(y_s, z, q, img)
                t = time.perf_counter()
                y_r, z_r = refine_latents(model, x, y_s, q, None, args.iterations, lr=float(lr), mode=mode,
                                         **({"tau_start": float(tau[0])} if tau else {}))
                secs += time.perf_counter() - t
                with torch.no_grad():
                    c1, b1, p1 = real(y_r, z_r, q, img)
                d_cost.append(c1 / c0 - 1)
                d_bytes.append(b1 / b0 - 1)
                d_psnr.append(p1 - p0)
        n = len(d_cost)
        row = {"config": cfg, "iterations": args.iterations, "cost_change": float(np.mean(d_cost)),
               "bytes_change": float(np.mean(d_bytes)), "psnr_change_db": float(np.mean(d_psnr)),
               "s_per_iteration": secs / (n * args.iterations)}
        rows.append(row)
        print(f"{cfg:>12}  {args.iterations} it  cost {100 * row['cost_change']:+.2f} %  bytes "
              f"{100 * row['bytes_change']:+.2f} %  PSNR {row['psnr_change_db']:+.3f} dB  "
              f"{row['s_per_iteration']:.2f} s/it", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
