#!/usr/bin/env python
"""Where a training step's gradient goes: per module, the gradient norm and its ratio to the weights' norm.

One batch of 256x256 centre crops of validation photos (the trainer's hash split; never Kodak), the training
loss at one quality, each crop's *own* value tokens as its one reference (the ideal reference: see
null_prior.py --self). If the CLM's query and key get almost no gradient while its value and null parameters
do, the attention cannot learn to pick the matching token: it stays close to uniform (docs/references.md).

    python benchmarks/clm_gradients.py --model src/clccodec/shipped/clc-full.pt --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.model.weights import load_weights  # noqa: E402
from clccodec.training.config import TrainConfig  # noqa: E402
from clccodec.training.data import ImageSet  # noqa: E402
from clccodec.training.trainer import rd_loss  # noqa: E402


def group(name: str) -> str:
    """Top-level module, except inside the CLM (its query, key, value, alignment and null parameters apart)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "clm" and len(parts) > 2 else parts[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--limit", type=int, default=4, help="crops in the batch")
    ap.add_argument("--quality", type=float, default=3.0)
    ap.add_argument("--json")
    args = ap.parse_args()

    model = load_weights(args.model).train()
    for p in model.parameters():
        p.requires_grad_(True)
    cfg = TrainConfig()  # the trainer's validation photos and crops
    val = ImageSet.load(args.data, "val", cfg.val_fraction, cfg.val_crop, cfg.downscale_glob)
    x = torch.cat([val.center_crop(i, cfg.val_crop) for i in range(min(args.limit, len(val)))])
    q = torch.full((x.shape[0],), args.quality)
    with torch.no_grad():
        values = model.reference_values(x).unsqueeze(1)
    loss, bpp, _, _ = rd_loss(model(x, q, values), x, q)
    loss.backward()
    sums: dict[str, list[float]] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            s = sums.setdefault(group(name), [0.0, 0.0])
            s[0] += float(p.grad.pow(2).sum())
            s[1] += float(p.detach().float().pow(2).sum())
    rows = [{"module": k, "grad": g**0.5, "weight": w**0.5, "ratio": (g / w) ** 0.5 if w else 0.0}
            for k, (g, w) in sums.items()]
    print(f"{x.shape[0]} crops, q {args.quality:g}, own tokens as the reference: loss {loss.item():.4f}, "
          f"bpp {bpp.item():.4f}")
    print("| module | gradient norm | weight norm | ratio |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['module']} | {r['grad']:.2e} | {r['weight']:.2e} | {r['ratio']:.1e} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "quality": args.quality, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
