#!/usr/bin/env python
"""Where a file's bits go: the hyper-latent z against each slice of y, from real .clc strings.

    python benchmarks/bit_split.py --photos 6 --json benchmarks/results/bit_split_v11.json

On held-out training photos at full size (the trainer's validation split by file-name hash, never Kodak), M = 0,
the shipped model unless --model: each quality's share of the bytes in the hyper-latent string and in each
slice string (the container's headers, a few bytes per file, are left out). Which part of the entropy model to
strengthen next: a weak hyperprior leaves the first slices, which see nothing else, to carry the most bits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from clccodec import Codec, container
from clccodec.imageio import load_image
from clccodec.training.data import is_validation

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="weights file (default: the shipped model)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--photos", type=int, default=6, help="the first N held-out photos (sorted by name)")
    ap.add_argument("--quality", type=float, nargs="+", default=[1.0, 3.0, 5.0, 8.0])
    ap.add_argument("--json", type=Path, help="write the table here too")
    args = ap.parse_args()

    torch.set_num_threads(1)
    codec = Codec(args.model, dictionary=False, device="cpu")
    photos = [p for p in sorted(Path(args.data).glob("*.png")) if is_validation(p, 0.05)][: args.photos]
    if not photos:
        raise SystemExit(f"no held-out photos under {args.data}")
    rows = []
    for q in args.quality:
        parts, pixels = None, 0
        for p in photos:
            img = load_image(p)
            tile = container.unpack(codec.encode(img, quality=q, refs=0)).tiles[0]
            sizes = [len(tile.hyper)] + [len(s) for s in tile.slices]
            parts = sizes if parts is None else [a + b for a, b in zip(parts, sizes)]
            pixels += img.width * img.height
        total = sum(parts)
        rows.append({"quality": q, "bpp": 8 * total / pixels, "z_share": parts[0] / total,
                     "slice_shares": [b / total for b in parts[1:]]})
        print(f"q{q:g}: {8 * total / pixels:.4f} bpp; z {100 * parts[0] / total:.1f} %; slices "
              + " / ".join(f"{100 * b / total:.1f} %" for b in parts[1:]))
    if args.json:
        args.json.write_text(json.dumps({"model": codec.model_id.hex(), "photos": [p.name for p in photos],
                                         "slices": list(codec.model.cfg.slices), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
