#!/usr/bin/env python
"""--effort on Kodak through the CLI: BD-rate of each effort against effort 0, encode and decode seconds, and
the --target-bpp check.

    python benchmarks/effort_rd.py ../shared/data/kodak --efforts 0 3 6 9 --quality 1 2 3 4 \
        --json benchmarks/results/effort_rd.json --md benchmarks/results/effort_rd.md
    python benchmarks/effort_rd.py ../shared/data/kodak --target-bpp 0.5     # the rate-control check only

For every (effort, quality) the images are encoded by one `clc encode IMAGES -o DIR/ -q Q --effort E` process
(the shipped model and dictionary, M = 3: one model load, per-file seconds from its output lines) and decoded by
one `clc decode` process (default synthesis); bpp from the real file sizes, PSNR on 8-bit RGB. BD-rate: the mean
curve over the images (bpp and PSNR averaged per quality), PSNR, points <= 1 bpp, against effort 0.
`--limit N` takes every (24 / N)-th image, spread over the set. Kodak is the test set: report, never tune here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LINE = re.compile(r"^(?P<src>\S+) -> (?P<dst>\S+)\s.*?\s(?P<secs>[0-9.]+) s")


def clc(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "clccodec", *args], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "400"})
    if r.returncode:
        sys.exit(f"clc {' '.join(args[:3])} ...: {r.stderr.strip()}")
    return r.stderr.splitlines()


def per_file_seconds(lines: list[str]) -> dict[str, float]:
    return {Path(m["src"]).stem: float(m["secs"]) for m in map(LINE.match, lines) if m}


def run_point(images: list[Path], work: Path, effort: int, q: float | None, extra: list[str]) -> dict:
    enc, dec = work / "clc", work / "png"
    for d in (enc, dec):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    qa = ["-q", f"{q:g}"] if q is not None else []
    t = time.perf_counter()
    enc_s = per_file_seconds(clc("encode", *map(str, images), "-o", f"{enc}/", *qa, "--effort", str(effort),
                                 *extra, "--force"))
    enc_wall = time.perf_counter() - t
    files = sorted(enc.glob("*.clc"))
    dec_s = per_file_seconds(clc("decode", *map(str, files), "-o", f"{dec}/", "--force"))
    from clccodec.evaluation.metrics import psnr

    rows = []
    for src in images:
        a = np.asarray(Image.open(src).convert("RGB"))
        b = np.asarray(Image.open(dec / f"{src.stem}.png").convert("RGB"))
        nbytes = (enc / f"{src.stem}.clc").stat().st_size
        rows.append({"image": src.stem, "bytes": nbytes, "bpp": 8 * nbytes / (a.shape[0] * a.shape[1]),
                     "psnr": psnr(a, b), "encode_s": enc_s[src.stem], "decode_s": dec_s[f"{src.stem}"]})
    return {"effort": effort, "quality": q, "images": rows, "encode_wall_s": enc_wall,
            "bpp": statistics.mean(r["bpp"] for r in rows), "psnr": statistics.mean(r["psnr"] for r in rows),
            "encode_s": statistics.mean(r["encode_s"] for r in rows),
            "decode_s": statistics.mean(r["decode_s"] for r in rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="folder of test images (Kodak)")
    ap.add_argument("--efforts", type=int, nargs="+", default=[0, 3, 6, 9])
    ap.add_argument("--quality", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--limit", type=int, help="use N images spread over the set")
    ap.add_argument("--target-bpp", type=float, help="instead: the --target-bpp check at effort --efforts[0]")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()

    from clccodec.evaluation.bd import bd_rate_result

    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png")
    if args.limit and args.limit < len(images):
        step = len(images) / args.limit
        images = [images[int(i * step)] for i in range(args.limit)]
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    load = os.getloadavg()[0]
    out: dict = {"images": [p.stem for p in images], "cpus": os.cpu_count(), "omp_threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        if args.target_bpp:
            p = run_point(images, Path(tmp), args.efforts[0], None, ["--target-bpp", f"{args.target_bpp:g}"])
            errs = [r["bpp"] / args.target_bpp - 1 for r in p["images"]]
            out["target_bpp"] = {"target": args.target_bpp, "effort": args.efforts[0], "point": p,
                                 "max_abs_error": max(map(abs, errs))}
            print(f"--target-bpp {args.target_bpp:g} (effort {args.efforts[0]}): {len(errs)} images, bpp "
                  f"{min(r['bpp'] for r in p['images']):.4f}..{max(r['bpp'] for r in p['images']):.4f}, worst "
                  f"error {100 * max(map(abs, errs)):.2f} %, {p['encode_s']:.1f} s per image")
        else:
            points = []
            for e in args.efforts:
                for q in args.quality:
                    p = run_point(images, Path(tmp), e, q, [])
                    points.append(p)
                    print(f"effort {e} q {q:g}: {p['bpp']:.4f} bpp  {p['psnr']:.3f} dB  encode {p['encode_s']:.1f} s"
                          f"  decode {p['decode_s']:.2f} s per image", flush=True)
            out["points"] = points
            base = [p for p in points if p["effort"] == args.efforts[0]]
            summary = []
            for e in args.efforts:
                cur = [p for p in points if p["effort"] == e]
                bd = bd_rate_result([p["bpp"] for p in base], [p["psnr"] for p in base], [p["bpp"] for p in cur],
                                    [p["psnr"] for p in cur], max_rate=1.0)
                summary.append({"effort": e, "bd_rate_le1bpp": bd.value, "bd_note": bd.reason,
                                "encode_s": statistics.mean(p["encode_s"] for p in cur),
                                "decode_s": statistics.mean(p["decode_s"] for p in cur)})
            out["summary"] = summary
            lines = [f"### --effort on {len(images)} Kodak images (shipped model, M = 3 asked, q "
                     f"{', '.join(f'{q:g}' for q in args.quality)}; {out['cpus']} CPUs, OMP threads {threads}, "
                     f"load average {load:.1f} at start)", "",
                     f"| effort | BD-rate vs effort {args.efforts[0]} (PSNR, <= 1 bpp) | encode s / image | "
                     "decode s / image |", "|---:|---:|---:|---:|"]
            for s in summary:
                bd = "-" if s["bd_rate_le1bpp"] is None else f"{s['bd_rate_le1bpp']:+.2f} %"
                lines.append(f"| {s['effort']} | {bd} | {s['encode_s']:.1f} | {s['decode_s']:.2f} |")
            text = "\n".join(lines)
            print(text)
            if args.md:
                Path(args.md).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
