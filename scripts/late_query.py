#!/usr/bin/env python
"""Convert weights to a CLM whose query sees the first decoded slices (model config query_slices), and give
that query something to start from (docs/references.md, "The query cannot find anything").

    python scripts/late_query.py src/clccodec/shipped/clc-full.pt /tmp/late.pt --slices 2 --steps 1500
    clc train ../shared/data/train --init /tmp/late.pt --match-weight 0.1 ...      # then train as usual

The conversion (CLCModel.reconfigured) keeps what the CLM computes; but trained by the RD loss alone its query
and key hardly move (near-uniform attention over T tokens gives each logit ~1/T of the gradient). So the query
and key alone are first trained with the contrastive matching loss (CLCModel.match_loss) on inputs computed
once: F_h and the decoded slices of random 256x256 crops of the training split (never Kodak), each position's
query against all positions' own value tokens of 3 crops (T = 768, as with M = 3). The validation photos' loss
is printed (chance: log 768 = 6.64). The output is an exported weights file (grids snapped, CDFs built).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.model.weights import load_weights, prepare_for_export, save_weights  # noqa: E402
from clccodec.training.data import ImageSet  # noqa: E402

CROP = 256
PER_STEP = 3  # crops per matching step: T = 3 x 256 tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("output")
    ap.add_argument("--slices", type=int, default=2, help="decoded slices the query sees (query_slices)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batches", type=int, default=32, help="batches of 8 training crops to cache")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = load_weights(args.model).reconfigured(query_slices=args.slices).eval()
    channels = model.cfg.query_channels

    @torch.no_grad()
    def inputs(x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(x, q, None)
        return torch.cat([out["feat"], out["y_hat_s"][:, :channels]], 1), model.value_proj(out["y"])

    t = time.perf_counter()
    train_set, val_set = ImageSet.load(args.data, "train"), ImageSet.load(args.data, "val")
    parts = [inputs(train_set.random_crops(rng, 8, CROP)[0], torch.rand(8) * 7 + 1) for _ in range(args.batches)]
    query_tr, own_tr = (torch.cat(p) for p in zip(*parts))
    xv = torch.cat([val_set.center_crop(i, CROP).reshape(1, 3, CROP, CROP) for i in range(len(val_set))])
    query_va, own_va = inputs(xv, torch.full((len(val_set),), 3.0))
    print(f"inputs of {query_tr.shape[0]} training crops in {time.perf_counter() - t:.0f} s", flush=True)
    clm = model.clm

    def val_loss() -> float:
        with torch.no_grad():
            n = len(val_set) - len(val_set) % PER_STEP
            return float(np.mean([clm.match_loss(query_va[i : i + PER_STEP], own_va[i : i + PER_STEP]).item()
                                  for i in range(0, n, PER_STEP)]))

    print(f"validation matching loss {val_loss():.3f} (chance {math.log(PER_STEP * 256):.2f})", flush=True)
    opt = torch.optim.Adam([*clm.query.parameters(), *clm.key.parameters()], lr=args.lr)
    model.train()
    for step in range(1, args.steps + 1):
        i = torch.randint(0, query_tr.shape[0], (PER_STEP,))
        loss = clm.match_loss(query_tr[i], own_tr[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == args.steps:
            print(f"step {step}: validation matching loss {val_loss():.3f}", flush=True)
    model.eval()
    prepare_for_export(model)
    mid = save_weights(model, args.output, {"from": str(args.model), "late_query": {"slices": args.slices,
                                                                                     "steps": args.steps}})
    print(f"{args.output}: model id {mid.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
