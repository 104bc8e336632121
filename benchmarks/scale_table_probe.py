"""Probe: would a finer Gaussian scale table save bits? The entropy model predicts each symbol's scale as a
fractional index into a 64-level log-spaced table (12 % apart) and the coder rounds it; here the index is
multiplied by K (a power of two: exact in float64) into a table of 63 K + 1 levels, so that the coded scale is
K times closer to the predicted one. Held-out training photos at full size (never Kodak), M = 0, real bytes;
the pixels do not depend on the scales (checked), so the byte change is the whole effect.

    python benchmarks/scale_table_probe.py --photos 8 --json benchmarks/results/scale_table_probe.json

It patches the loaded model for the run: an experiment, not an option.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from clccodec import Codec
from clccodec.model import entropy as E
from clccodec.training.data import ImageSet

ROOT = Path(__file__).resolve().parents[1]
QUALITIES = (1.0, 3.0, 5.0, 8.0)


def use_subdivision(codec: Codec, k: int) -> int:
    """Code with the scale index times k in a table of (levels - 1) k + 1 levels; returns that size."""
    ent = codec.model.entropy
    levels = (ent.levels - 1) * k + 1
    ent.gaussian.update_scale_table(E.scale_table(levels), force=True)
    ent.indexes = lambda s: torch.round(s * k).clamp_(0, levels - 1).int()
    return levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--k", default="1,2,4,8", help="subdivisions to try (the first is the reference)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    imgs = ImageSet.load(args.data, "val", 0.05, 64).images[: args.photos]
    codec = Codec(None, dictionary=False, device="cpu")  # the shipped weights
    ks = [int(k) for k in args.k.split(",")]
    res: dict = {"model": codec.model_id.hex(), "photos": len(imgs), "bytes": {}, "change_pct": {}}
    pixels = None
    for k in ks:
        levels = use_subdivision(codec, k)
        res["bytes"][k] = {f"q{q:g}": sum(len(codec.encode(img, q, 0)) for img in imgs) for q in QUALITIES}
        rec = np.asarray(codec.decode(codec.encode(imgs[0], 3.0, 0)))
        assert pixels is None or np.array_equal(rec, pixels), "the pixels changed with the scale table"
        pixels = rec
        base = res["bytes"][ks[0]]
        res["change_pct"][k] = {q: round(100 * (b / base[q] - 1), 3) for q, b in res["bytes"][k].items()}
        print(f"K={k} ({levels} levels): bytes {res['bytes'][k]}, change vs K={ks[0]}: {res['change_pct'][k]}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
