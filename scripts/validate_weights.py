#!/usr/bin/env python
"""Compare weights files on the validation split (never Kodak): the decision before shipping new weights.

    python scripts/validate_weights.py src/clccodec/shipped/clc-full.pt runs/new/clc-full.pt   # crops + full size
    python scripts/validate_weights.py A.pt B.pt --no-full --json out.json
    python scripts/validate_weights.py A.pt C.pt --reuse out.json   # A's numbers from out.json (same model id)

For each weights file:
* the trainer's validation (the held-out photos of ../shared/data/train by the hash split, 256x256 centre crops,
  likelihood bpp, M = 3 references from the training bank built with that model's own g_a): the number that
  `clc train` logs as val_loss, so a checkpoint and a shipped file are judged alike;
* with --full (default): the same photos at full size through the real codec (real .clc bytes, M = 0 so that
  no dictionary is needed) at qualities 1, 3, 5, 8: mean bpp and PSNR, the BD-rate (PSNR, all rates) of
  every file against the first one, and at each quality the rate change at equal PSNR against the first one
  (its curve interpolated in log-rate): where a change of training trades low rates against high ones.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUALITIES = (1.0, 3.0, 5.0, 8.0)


def crop_validation(weights: Path, data: str) -> dict:
    from clccodec.training.trainer import Trainer, TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(TrainConfig(data=data, out=tmp, init=str(weights), device="cpu"))
        tr._refresh_bank()
        return tr.validate()


def full_size(weights: Path, data: str) -> dict:
    from clccodec import Codec
    from clccodec.training.data import ImageSet

    val = ImageSet.load(data, "val", 0.05, 64)
    codec = Codec(weights, dictionary=False, device="cpu")
    out = {}
    for q in QUALITIES:
        bpps, psnrs = [], []
        for img in val.images:
            data_ = codec.encode(img, q, 0)
            rec = np.asarray(codec.decode(data_), dtype=np.float64)
            mse = float(np.mean((rec - img.astype(np.float64)) ** 2))
            bpps.append(8 * len(data_) / (img.shape[0] * img.shape[1]))
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
        out[f"q{q:g}"] = {"bpp": round(float(np.mean(bpps)), 4), "psnr": round(float(np.mean(psnrs)), 3)}
        print(f"  {weights.name} q{q:g}: {out[f'q{q:g}']}", flush=True)
    out["pixels"] = int(np.mean([i.shape[0] * i.shape[1] for i in val.images]))
    return out


def rate_change_at_equal_psnr(ref: list[dict], pt: dict) -> float:
    """Percent more bits than the reference curve needs for pt's PSNR (log-rate linear in PSNR between its
    points, extended along the nearest segment beyond them)."""
    pts = sorted(ref, key=lambda p: p["psnr"])
    i = min(max(np.searchsorted([p["psnr"] for p in pts], pt["psnr"]) - 1, 0), len(pts) - 2)
    a, b = pts[i], pts[i + 1]
    t = (pt["psnr"] - a["psnr"]) / (b["psnr"] - a["psnr"])
    log_rate = math.log(a["bpp"]) + t * (math.log(b["bpp"]) - math.log(a["bpp"]))
    return 100 * (pt["bpp"] / math.exp(log_rate) - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--full", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", type=Path, action="append", default=[],
                    help="an earlier --json output: weights listed there with the same model id are not measured "
                         "again (same data); a path alone is not enough (the shipped file changes with each release)")
    args = ap.parse_args()
    from clccodec.evaluation.bd import bd_rate

    from clccodec.model.weights import load_weights

    earlier = {}  # model id -> results
    for f in args.reuse:
        earlier |= {r["model_id"]: r for r in json.loads(f.read_text()).values() if "model_id" in r}
    res = {}
    for w in args.weights:
        mid = load_weights(w).model_id.hex()
        if mid in earlier and ("full" in earlier[mid] or not args.full):
            res[str(w)] = earlier[mid]
            continue
        r = {"model_id": mid, "crops": crop_validation(w, args.data)}
        print(f"{w}: crop val_loss {r['crops']['val_loss']:.4f}", flush=True)
        if args.full:
            r["full"] = full_size(w, args.data)
        res[str(w)] = r
    first = res[str(args.weights[0])]
    print("\n| weights | crop val loss | " + " | ".join(f"{q} bpp / PSNR" for q in first["crops"] if q.startswith("q"))
          + (" | full-size q1..q8 bpp / PSNR | BD-rate vs first (full size) | rate at equal PSNR, q1..q8 |"
             if args.full else " |"))
    for w, r in res.items():
        cells = " | ".join(f"{v['bpp']:.3f} / {v['psnr']:.2f}" for k, v in r["crops"].items() if k.startswith("q"))
        line = f"| {w} | {r['crops']['val_loss']:.4f} | {cells} |"
        if args.full:
            pts = [r["full"][f"q{q:g}"] for q in QUALITIES]
            ref = [first["full"][f"q{q:g}"] for q in QUALITIES]
            bd = bd_rate([p["bpp"] for p in ref], [p["psnr"] for p in ref], [p["bpp"] for p in pts],
                         [p["psnr"] for p in pts])
            line += " " + ", ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in pts) + f" | {bd:+.2f} % | "
            line += ", ".join(f"{rate_change_at_equal_psnr(ref, p):+.1f} %" for p in pts) + " |"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
