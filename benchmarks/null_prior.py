#!/usr/bin/env python
"""Why references cost bits, and what the CLM's null prior does about it (docs/references.md).

For validation photos of the training split (the trainer's hash split; never Kodak), the model's likelihood bits
and PSNR (float forward pass, eval mode: rounded latents) with M = 0 and with the M top references of a
dictionary, for the same weights without and with `null_prior`; and the attention weight the null token gets
(the mean over positions of its share of the softmax).

    python benchmarks/null_prior.py --model src/clccodec/shipped/clc-full.pt \
        --dict src/clccodec/shipped/default.clcdict --limit 6 --json benchmarks/results/refs/null_prior_v3.json

`--self` replaces the dictionary by the ideal reference: the image's own value tokens (value_proj(g_a(x)) on the
int8 grid, one reference of the image's size), i.e. at every position the token that describes it. What the
CLM gains from that bounds what any reference can give it.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.dictionary.store import ReferenceDictionary  # noqa: E402
from clccodec.imageio import load_image, pad_to_multiple, to_tensor  # noqa: E402
from clccodec.model.codec import PAD_MULTIPLE, CLCModel  # noqa: E402
from clccodec.model.reference import int8_to_values, values_to_tokens  # noqa: E402
from clccodec.model.weights import load_weights  # noqa: E402
from clccodec.training.data import is_validation, training_images  # noqa: E402


@torch.no_grad()
def rate_psnr(model: CLCModel, x: torch.Tensor, values: torch.Tensor | None, q: float) -> tuple[float, float]:
    out = model(x, torch.tensor([q]), values)
    bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    mse = float((out["x_hat"].clamp(0, 1) - x).pow(2).mean())
    return bits / (x.shape[-2] * x.shape[-1]), 10 * math.log10(1 / mse)


@torch.no_grad()
def null_share(model: CLCModel, x: torch.Tensor, values: torch.Tensor, q: float) -> float:
    """The null token's mean attention weight: the CLM's attention with null value 1 and token values 0 outputs
    exactly that weight at every position (its query sees what the decoder's does: F_h and, with
    query_slices, the first decoded slices)."""
    out = model(x, torch.tensor([q]), values)
    probe = copy.deepcopy(model.clm)
    probe.null_value.fill_(1.0)
    probe.value.weight.zero_()
    probe.value.bias.zero_()
    k = model.cfg.query_channels
    decoded = out["y_hat_s"][:, :k] if k else None
    return float(probe._attend(out["feat"], values_to_tokens(values), 4096, decoded).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dict", help="a .clcdict built for --model (or --self)")
    ap.add_argument("--self", dest="self_ref", action="store_true", help="the image's own tokens as its reference")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--quality", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    ap.add_argument("--json")
    args = ap.parse_args()
    if not args.self_ref and not args.dict:
        ap.error("give --dict or --self")

    base = load_weights(args.model)
    models = {on: base.reconfigured(null_prior=on).eval() for on in (False, True)}
    d = None if args.self_ref else ReferenceDictionary.load(args.dict)
    val = [p for p in training_images(args.data) if is_validation(p, 0.05)][: args.limit]
    rows = []
    for p in val:
        x = pad_to_multiple(to_tensor(load_image(p).pixels), PAD_MULTIPLE)
        if d is None:
            with torch.no_grad():
                values = base.reference_values(x).unsqueeze(1)  # (1, 1, C, h, w), on the int8 grid
        else:
            idx = d.retrieve(base, x, args.refs)
            values = int8_to_values(d.values(idx).clone(), torch.float32).unsqueeze(0)
        for q in args.quality:
            b0, p0 = rate_psnr(models[False], x, None, q)
            for prior, m in models.items():
                b, ps = rate_psnr(m, x, values, q)
                rows.append({"image": p.name, "quality": q, "null_prior": prior, "bits_vs_m0_pct": 100 * (b / b0 - 1),
                             "dpsnr_vs_m0": ps - p0, "null_share": null_share(m, x, values, q)})
        print(p.name, flush=True)
    what = "the image's own tokens" if d is None else f"M = {args.refs}"
    print(f"\n{len(val)} validation photos, {what} vs M = 0 (likelihood bits, same weights)")
    print("| quality | null prior | bits vs M = 0 | PSNR vs M = 0 dB | null token's weight |")
    print("|---:|---|---:|---:|---:|")
    summary = []
    for q in args.quality:
        for prior in (False, True):
            r = [x for x in rows if x["quality"] == q and x["null_prior"] == prior]
            s = {k: float(np.mean([x[k] for x in r])) for k in ("bits_vs_m0_pct", "dpsnr_vs_m0", "null_share")}
            summary.append({"quality": q, "null_prior": prior} | s)
            print(f"| {q:g} | {'on' if prior else 'off'} | {s['bits_vs_m0_pct']:+.2f} % | {s['dpsnr_vs_m0']:+.3f} | "
                  f"{s['null_share']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "dict": args.dict,
                                               "refs": "self" if d is None else args.refs,
                                               "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
