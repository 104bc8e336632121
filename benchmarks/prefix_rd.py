#!/usr/bin/env python
"""Progressive decoding on Kodak: for every slice prefix of a .clc file, its bytes and the quality it decodes to.

    python benchmarks/prefix_rd.py ../shared/data/kodak --quality 4 --json prefix_rd.json --md prefix_rd.md
    python benchmarks/prefix_rd.py photos/ --limit 1 --model tiny.pt          # smoke run

Each image is encoded once into a real version-2 file (shipped model or --model, default dictionary, M = 3). Prefix k
(k = 0 .. S) is the file cut where slice k's section ends (`clc info`'s hyper_end / slice_ends: the bytes a
download needs before it can show that preview), decoded with partial=True: the missing slices take their mean
prediction (`--detail mean`) or a seeded sample (`--detail sample --seed N`, seeds given by --seeds). Reported
per prefix: mean bytes, mean bpp (8 x prefix bytes / pixels), mean PSNR-RGB and MS-SSIM-RGB over the images.
Prefix S is the whole file (no slice is missing, mean and sampled are the same decode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="folder of test images (Kodak)")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds for the sampled detail")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--model", help="weights file (default: the shipped model)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()

    from clccodec import Codec, read_info
    from clccodec.evaluation.metrics import ms_ssim, psnr
    from clccodec.io.images import list_images, load_image

    paths = list_images(args.images)
    if args.limit:
        paths = paths[: args.limit]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    codec = Codec(args.model, device="cpu")
    rows = []
    t0 = time.time()
    for n, p in enumerate(paths):
        img = load_image(p)
        data = codec.encode(img, args.quality, args.refs)
        info = read_info(data)
        ends = [info["hyper_end"], *info["slice_ends"]]
        row = {"image": p.name, "bytes": len(data), "pixels": img.width * img.height, "prefixes": []}
        for k, end in enumerate(ends):
            prefix = data[:end]
            r = codec.decode_full(prefix, partial=True)
            assert r.slices_used == k
            entry = {"slices": k, "bytes": end, "mean": {"psnr": psnr(img.pixels, r.pixels),
                                                         "ms_ssim": ms_ssim(img.pixels, r.pixels)[0]}}
            if k < len(ends) - 1:
                samp = [codec.decode_full(prefix, partial=True, detail="sample", seed=s).pixels for s in seeds]
                entry["sample"] = {"psnr": statistics.fmean(psnr(img.pixels, x) for x in samp),
                                   "ms_ssim": statistics.fmean(ms_ssim(img.pixels, x)[0] for x in samp)}
            else:
                entry["sample"] = entry["mean"]
            row["prefixes"].append(entry)
        rows.append(row)
        last = row["prefixes"]
        print(f"[{n + 1}/{len(paths)}] {p.name}: " + "  ".join(
            f"{e['slices']}:{e['bytes']}B {e['mean']['psnr']:.2f}/{e['sample']['psnr']:.2f}dB" for e in last)
            + f"  ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        summary = summarise(rows)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"quality": args.quality, "refs": args.refs, "seeds": seeds,
                                             "model_id": codec.model.model_id.hex(), "images": len(rows),
                                             "summary": summary, "per_image": rows}, indent=1) + "\n")
        if args.md:
            args.md.write_text(markdown(summary, args, len(rows), codec.model.model_id.hex()))
    print(markdown(summarise(rows), args, len(rows), codec.model.model_id.hex()))


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for k in range(len(rows[0]["prefixes"])):
        es = [r["prefixes"][k] for r in rows]
        out.append({"slices": k,
                    "bytes": statistics.fmean(e["bytes"] for e in es),
                    "bpp": statistics.fmean(8 * e["bytes"] / r["pixels"] for e, r in zip(es, rows)),
                    "share": statistics.fmean(e["bytes"] / r["bytes"] for e, r in zip(es, rows)),
                    **{f"{d}_{m}": statistics.fmean(e[d][m] for e in es)
                       for d in ("mean", "sample") for m in ("psnr", "ms_ssim")}})
    return out


def markdown(summary: list[dict], args, n: int, model: str) -> str:
    lines = [f"Progressive decoding, {n} images of {Path(args.images).name}, quality {args.quality:g}, "
             f"M = {args.refs}, model {model[:8]}; sampled detail averaged over seeds {args.seeds}. Prefix k = the "
             "file cut after slice k (0 = header + hyper-latent only); the last row is the whole file.", "",
             "| slices | mean bytes | bpp | share of file | PSNR mean dB | PSNR sampled dB | MS-SSIM mean "
             "| MS-SSIM sampled |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(f"| {s['slices']} | {s['bytes']:.0f} | {s['bpp']:.4f} | {100 * s['share']:.1f} % | "
                     f"{s['mean_psnr']:.2f} | {s['sample_psnr']:.2f} | {s['mean_ms_ssim']:.4f} | "
                     f"{s['sample_ms_ssim']:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
