#!/usr/bin/env python
"""The fast decoders against the bit-exact one, and the torch-free encoder against the torch one, on real images.

    python benchmarks/fast_vs_exact.py ../shared/data/kodak -q 1,4,8 --json fast_vs_exact_kodak.json
    python benchmarks/fast_vs_exact.py photos/ -q 2 --limit 1 --model tiny.pt       # smoke run

Every image is encoded once per quality (the shipped model or --model, the default dictionary, M = 3), the
bytes decoded with decode_pixels(exact=True) (the reference) and with the two fast decoders: "fast", the torch
Codec's default (float32 synthesis: what a GPU uses) and "lite", the torch-free numpy backend that `clc decode`
and `clccodec.decode` run on a CPU (clccodec.LiteDecoder). Reported per quality and fast decoder: the largest
absolute 8-bit difference to the exact decode, the share of samples that differ, the mean PSNR against the
source (per image, then averaged, like `clc eval`) and its difference to the exact one's, and the decode seconds
(medians). Each image is also encoded with the torch-free encoder (clccodec.Encoder on a CPU, what `clc encode`
runs): how many of its files are the torch Codec's byte for byte, its bytes over the torch files' bytes, the mean
PSNR of its files (exact decode) minus the torch files', and both encoders' seconds (medians). Kodak is a test
set: this reports, it chooses nothing.
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
    p.add_argument("--model", help="weights file (default: the shipped model)")
    p.add_argument("--json")
    args = p.parse_args(argv)

    import clccodec
    from clccodec.evaluation.metrics import psnr
    from clccodec.evaluation.runner import find_images, load_images, parse_qualities

    codec = clccodec.Codec(args.model, device="cpu")
    encoder = clccodec.Encoder(args.model, device="cpu")
    decoders = {"fast": codec.decode_pixels, "lite": clccodec.LiteDecoder(args.model).decode_pixels}
    images = load_images(find_images(args.images, args.limit))
    rows = []

    def timed(fn, data):
        t = time.perf_counter()
        pixels, _ = fn(data)
        return pixels, time.perf_counter() - t

    for q in parse_qualities(args.quality):
        stats = {k: {"worst": 0, "differ": 0, "psnr": [], "t": []} for k in decoders}
        n, p_exact, t_exact = 0, [], []
        enc = {"same": 0, "bytes_torch": 0, "bytes_numpy": 0, "psnr": [], "t_torch": [], "t_numpy": []}
        for im in images:
            t = time.perf_counter()
            data = codec.encode_full(im.loaded, q, args.refs).data
            enc["t_torch"].append(time.perf_counter() - t)
            t = time.perf_counter()
            other = encoder.encode_full(im.loaded, q, args.refs).data
            enc["t_numpy"].append(time.perf_counter() - t)
            exact, t = timed(lambda d: codec.decode_pixels(d, exact=True), data)
            t_exact.append(t)
            p_exact.append(psnr(im.pixels, exact))
            enc["same"] += other == data
            enc["bytes_torch"], enc["bytes_numpy"] = enc["bytes_torch"] + len(data), enc["bytes_numpy"] + len(other)
            enc["psnr"].append(p_exact[-1] if other == data else
                               psnr(im.pixels, codec.decode_pixels(other, exact=True)[0]))
            n += exact.size
            for name, fn in decoders.items():
                pixels, t = timed(fn, data)
                d = np.abs(pixels.astype(np.int16) - exact.astype(np.int16))
                st = stats[name]
                st["worst"], st["differ"] = max(st["worst"], int(d.max())), st["differ"] + int((d != 0).sum())
                st["psnr"].append(psnr(im.pixels, pixels))
                st["t"].append(t)
        row = {"quality": q, "images": len(images), "psnr_exact": float(np.mean(p_exact)),
               "decode_exact_s": statistics.median(t_exact)}
        line = [f"q={q:g}: {len(images)} images, PSNR exact {row['psnr_exact']:.4f} dB, decode exact "
                f"{row['decode_exact_s']:.2f} s"]
        for name, st in stats.items():
            r = {"max_abs_diff": st["worst"], "differing_samples": st["differ"] / n,
                 "psnr": float(np.mean(st["psnr"])), "psnr_minus_exact": float(np.mean(st["psnr"]) - np.mean(p_exact)),
                 "max_abs_psnr_diff_per_image": float(np.max(np.abs(np.subtract(st["psnr"], p_exact)))),
                 "decode_s": statistics.median(st["t"])}
            row[name] = r
            line.append(f"  {name}: max |diff| {r['max_abs_diff']}, {100 * r['differing_samples']:.3f} % of samples "
                        f"differ, PSNR {r['psnr']:.4f} dB (diff {r['psnr_minus_exact']:+.5f}, worst image "
                        f"{r['max_abs_psnr_diff_per_image']:.5f}), decode {r['decode_s']:.2f} s")
        row["numpy_encoder"] = e = {
            "identical_files": enc["same"], "bytes_over_torch": enc["bytes_numpy"] / enc["bytes_torch"],
            "psnr_minus_torch": float(np.mean(enc["psnr"]) - np.mean(p_exact)),
            "encode_s": statistics.median(enc["t_numpy"]), "torch_encode_s": statistics.median(enc["t_torch"])}
        line.append(f"  torch-free encoder: {e['identical_files']} of {len(images)} files the torch encoder's bytes, "
                    f"bytes x{e['bytes_over_torch']:.5f}, PSNR diff {e['psnr_minus_torch']:+.5f} dB; encode "
                    f"{e['encode_s']:.2f} s (torch {e['torch_encode_s']:.2f} s)")
        rows.append(row)
        print("\n".join(line), flush=True)
    if args.json:
        blob = {"command": " ".join(["benchmarks/fast_vs_exact.py", *(argv if argv is not None else sys.argv[1:])]),
                "model_id": codec.model.model_id.hex(), "refs": args.refs, "loadavg_at_end": list(os.getloadavg()),
                "results": rows}
        Path(args.json).write_text(json.dumps(blob, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
