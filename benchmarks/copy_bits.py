#!/usr/bin/env python
"""What a copied block costs in the copy section (blockcopy.COPY_BITS): bits per copied block on synthetic
sibling views of training photos (../shared/data/train_extra; never Kodak or the test collections).

    python benchmarks/copy_bits.py --photos 6

Each photo (long side 768) is the picture; its "view" is the photo under a small affine change (scale 0.96, a
slight rotation, a sub-pixel shift) with a little noise, cut by 32 pixels each side. The best 60 % of the view's
blocks by match error are copied, with predicted displacements preferred as the encoder does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clccodec import blockcopy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train_extra"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--photos", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    bits = blocks = 0
    for f in sorted(args.data.glob("*.jpg"))[: args.photos]:
        im = Image.open(f).convert("RGB")
        s = 768 / max(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        pic = np.asarray(im)
        w, h = im.size
        view = im.transform((w, h), Image.AFFINE, (0.96, 0.01, 11.3, -0.01, 0.96, 17.7), Image.BICUBIC)
        v = np.clip(np.asarray(view).astype(float) + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)
        v = v[32 : h - 32, 32 : w - 32]
        m = blockcopy.find_matches(blockcopy.to_unit(v), [blockcopy.to_unit(pic)], [0])
        bc = m.copy_for(m.mse < np.quantile(m.mse, 0.6))
        bc = blockcopy.prefer_predicted(bc, v, m.mse + 2e-4, [pic])
        n = 8 * len(blockcopy.pack(bc))
        bits, blocks = bits + n, blocks + bc.copied
        print(f"{f.name}: {bc.copied} copied blocks, {n / bc.copied:.2f} bits each")
    print(f"mean: {bits / blocks:.2f} bits per copied block (blockcopy.COPY_BITS = {blockcopy.COPY_BITS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
