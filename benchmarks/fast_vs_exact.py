#!/usr/bin/env python
"""The default fast synthesis against the bit-exact one, on real images, from real .clc bytes.

    python benchmarks/fast_vs_exact.py ../shared/data/kodak -q 1,4,8 --json benchmarks/results/fast_vs_exact_kodak.json

Every image is encoded once per quality (the shipped model and default dictionary, M = 3), the bytes decoded
with decode_pixels() (fast, the default) and decode_pixels(exact=True); reported per quality: the largest
absolute 8-bit difference between the two decodes, the share of samples that differ, the mean PSNR of each
against the source (per image, then averaged, like `clc eval`) and their difference, and the decode seconds of
each (medians). Kodak is a test set: this reports, it chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="folders and/or image files")
    p.add_argument("-q", "--quality", default="1,4,8")
    p.add_argument("--refs", type=int, default=3)
    p.add_argument("--limit", type=int)
    p.add_argument("--model")
    p.add_argument("--json")
    args = p.parse_args(argv)

    import clccodec
    from clccodec.evaluation.metrics import psnr
    from clccodec.evaluation.runner import find_images, load_images, parse_qualities

    codec = clccodec.Codec(args.model, device="cpu")
    images = load_images(find_images(args.images, args.limit))
    rows = []
    for q in parse_qualities(args.quality):
        worst, differ, n, p_fast, p_exact, t_fast, t_exact = 0, 0, 0, [], [], [], []
        for im in images:
            data = codec.encode_full(im.loaded, q, args.refs).data
            t = time.perf_counter()
            fast, _ = codec.decode_pixels(data)
            t_fast.append(time.perf_counter() - t)
            t = time.perf_counter()
            exact, _ = codec.decode_pixels(data, exact=True)
            t_exact.append(time.perf_counter() - t)
            d = np.abs(fast.astype(np.int16) - exact.astype(np.int16))
            worst, differ, n = max(worst, int(d.max())), differ + int((d != 0).sum()), n + d.size
            p_fast.append(psnr(im.pixels, fast))
            p_exact.append(psnr(im.pixels, exact))
        row = {"quality": q, "images": len(images), "max_abs_diff": worst, "differing_samples": differ / n,
               "psnr_fast": float(np.mean(p_fast)), "psnr_exact": float(np.mean(p_exact)),
               "psnr_fast_minus_exact": float(np.mean(p_fast) - np.mean(p_exact)),
               "max_abs_psnr_diff_per_image": float(np.max(np.abs(np.subtract(p_fast, p_exact)))),
               "decode_fast_s": statistics.median(t_fast), "decode_exact_s": statistics.median(t_exact)}
        rows.append(row)
        print(f"q={q:g}: {len(images)} images, max |fast - exact| {worst}, {100 * differ / n:.3f} % of samples "
              f"differ, PSNR fast {row['psnr_fast']:.4f} dB exact {row['psnr_exact']:.4f} dB "
              f"(diff {row['psnr_fast_minus_exact']:+.5f}, worst image {row['max_abs_psnr_diff_per_image']:.5f}), "
              f"decode fast {row['decode_fast_s']:.2f} s exact {row['decode_exact_s']:.2f} s", flush=True)
    if args.json:
        blob = {"command": " ".join(["benchmarks/fast_vs_exact.py", *(argv if argv is not None else sys.argv[1:])]),
                "model_id": codec.model.model_id.hex(), "refs": args.refs, "loadavg_at_end": list(os.getloadavg()),
                "results": rows}
        Path(args.json).write_text(json.dumps(blob, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
