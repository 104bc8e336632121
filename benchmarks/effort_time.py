#!/usr/bin/env python
"""Encode seconds per effort at one image, in process (one loaded Codec, after a warm-up), and the decode seconds
of each file (the decoder is the same for every effort). Run it on an idle machine.

    python benchmarks/effort_time.py ../shared/data/kodak/kodim01.png --json benchmarks/results/effort_time_idle.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--quality", type=float, default=2.0)
    ap.add_argument("--efforts", type=int, nargs="+", default=[0, 2, 5, 9])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    from clccodec.api import Codec

    torch.set_num_threads(args.threads)
    c = Codec(device="cpu")
    img = np.asarray(Image.open(args.image).convert("RGB"))
    c.encode_full(img, args.quality)  # warm-up
    res = {}
    for e in args.efforts:
        t = time.perf_counter()
        r = c.encode_full(img, args.quality, effort=e)
        enc = time.perf_counter() - t
        t = time.perf_counter()
        c.decode_pixels(r.data)
        res[e] = {"encode_s": round(enc, 2), "decode_s": round(time.perf_counter() - t, 3), "bytes": len(r.data),
                  "refs": r.refs}
        print(f"effort {e}: encode {enc:.2f} s, decode {res[e]['decode_s']:.2f} s, {len(r.data)} bytes, "
              f"M = {r.refs}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"image": args.image, "quality": args.quality, "threads": args.threads, "efforts": res}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
