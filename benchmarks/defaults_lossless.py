#!/usr/bin/env python
"""What default settings give on Kodak, and the near-lossless / lossless points, through the real CLI.

    python benchmarks/defaults_lossless.py ../shared/data/kodak --json defaults.json --md defaults.md
    python benchmarks/defaults_lossless.py photos/ --limit 1 --qualities 3 --near 2 --model tiny.pt   # smoke run

Defaults: `clc encode` at --qualities (the default one marked; M = 3 from the default dictionary), beside the classical codecs at
their command-line tools' defaults, run through Pillow's copies of the same libraries (libjpeg, libwebp, libavif;
cjxl has no Pillow binding and is not measured): cjpeg's quality 75 with 4:2:0, cwebp's quality 75 method 4,
avifenc's quality 60 at speed 6 with 4:4:4 (what avifenc picks for RGB PNG input). Near-lossless: `clc encode
--near-lossless N` (the lossy layer at its default quality 8), the largest error of any sample, beside
lossless PNG (Pillow, optimize) and lossless WebP (method 6). bpp from the real files, PSNR on 8-bit RGB, means
over the images. Kodak is the test set: report, never tune here.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import encode_decode, report, spread, use_model

CLASSICAL = {  # what each tool does with no options, as Pillow's save() takes it
    "JPEG (cjpeg default: q 75, 4:2:0)": ("JPEG", {"quality": 75, "subsampling": "4:2:0"}),
    "WebP (cwebp default: q 75, method 4)": ("WEBP", {"quality": 75, "method": 4}),
    "AVIF (avifenc default: q 60, speed 6, 4:4:4)": ("AVIF", {"quality": 60, "speed": 6, "subsampling": "4:4:4"}),
}
LOSSLESS = {"PNG (Pillow, optimize)": ("PNG", {"optimize": True}),
            "WebP lossless (method 6)": ("WEBP", {"lossless": True, "method": 6})}


def classical(images: list[Path], fmt: str, kw: dict) -> dict:
    from PIL import Image

    from clccodec.evaluation.metrics import psnr

    rows = []
    for src in images:
        a = np.asarray(Image.open(src).convert("RGB"))
        t = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, fmt, **kw)
        enc_s = time.perf_counter() - t
        b = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        rows.append({"image": src.stem, "bpp": 8 * len(buf.getvalue()) / (a.shape[0] * a.shape[1]),
                     "psnr": psnr(a, b), "max_error": int(np.abs(a.astype(int) - b).max()), "encode_s": enc_s})
    return summary(rows)


def summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("image",)]
    out = {k: statistics.mean(r[k] for r in rows) for k in keys if k != "max_error"}
    if "max_error" in rows[0]:
        out["max_error"] = max(r["max_error"] for r in rows)
    return {"images": rows, **out}


def with_max_error(images: list[Path], work: Path, point: dict) -> dict:
    from PIL import Image

    for row, src in zip(point["images"], images):
        a = np.asarray(Image.open(src).convert("RGB")).astype(int)
        b = np.asarray(Image.open(work / "png" / f"{src.stem}.png").convert("RGB"))
        row["max_error"] = int(np.abs(a - b).max())
    return point | {"max_error": max(r["max_error"] for r in point["images"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="folder of test images (Kodak)")
    ap.add_argument("--qualities", type=float, nargs="*", default=[3, 4, 5, 6],
                    help="clc qualities (the default quality is marked)")
    ap.add_argument("--near", type=int, nargs="*", default=[0, 1, 2], help="near-lossless bounds")
    ap.add_argument("--limit", type=int, help="use N images spread over the set")
    ap.add_argument("--model", help="weights file (default: the shipped model)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    use_model(args.model)
    images = spread(sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png"), args.limit)
    dictionary = ["--dict", "none"] if args.model else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from clccodec.defaults import DEFAULT_QUALITY

        for q in args.qualities:
            point = encode_decode(images, work, ["-q", f"{q:g}"] + dictionary)
            rows.append({"codec": f"clc q {q:g}" + (" (default)" if q == DEFAULT_QUALITY else ""), **point})
        for name, (fmt, kw) in CLASSICAL.items():
            rows.append({"codec": name, **classical(images, fmt, kw)})
        for n in args.near:
            point = encode_decode(images, work, ["--near-lossless", str(n)] + dictionary)
            label = "clc --lossless" if n == 0 else f"clc --near-lossless {n}"
            rows.append({"codec": label, **with_max_error(images, work, point)})
        for name, (fmt, kw) in LOSSLESS.items():
            rows.append({"codec": name, **classical(images, fmt, kw)})
    from importlib.metadata import version

    for r in rows:  # a lossless file's PSNR is infinite: 99 dB in the table and the JSON (which has no infinity)
        r["psnr"] = min(r["psnr"], 99.0)
        for row in r["images"]:
            row["psnr"] = min(row["psnr"], 99.0)
    lines = [f"{len(images)} images of {args.images}, clccodec {version('clccodec')}{', model ' + args.model if args.model else ''}", "",
             "| codec and settings | bpp | PSNR dB | max error | encode s |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        err = r.get("max_error")
        lines.append(f"| {r['codec']} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
                     f"{'' if err is None else err} | {r['encode_s']:.2f} |")
    lines.append("")
    lines.append("PSNR of a lossless file: shown as 99.00 (infinite).")
    report("\n".join(lines), {"images": [p.name for p in images], "rows": rows}, args.md, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
