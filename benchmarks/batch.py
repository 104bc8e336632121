#!/usr/bin/env python
"""Batch throughput of the real CLI: `clc encode DIR/*.png -o out/` and `clc decode out/*.clc -o dec/`.

    python benchmarks/batch.py                                   # 8 synthetic 768x512 photos, shipped model, M = 3
    python benchmarks/batch.py --images 16 --json batch_cpu.json
    python benchmarks/batch.py --images 2 --size 64x64 --model tiny.pt        # smoke run

One `clc` process per direction (one model load per batch, as a user runs it); images/s = images / wall seconds
of the whole process, start-up and model load included, and also per image from the per-file lines `clc` prints
(coding + file I/O of that file). The images are benchmarks/common.py's synthetic pattern with a different seed
each (or --source: the first N images of a folder).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(args: list[str], env: dict) -> tuple[float, list[float], str]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "clccodec", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"clc {' '.join(args[:2])} failed: {r.stderr.strip()[-400:]}")
    per_file = [float(m) for m in re.findall(r"\s([0-9.]+) s(?:\s|$)", r.stderr)]
    return wall, per_file, r.stderr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--size", default="768x512")
    p.add_argument("--quality", type=float, default=3.0)
    p.add_argument("--refs", type=int, default=3)
    p.add_argument("--source", help="a folder of images to use instead of the synthetic pattern")
    p.add_argument("--model", help="weights file (default: the shipped model)")
    p.add_argument("--exact", action="store_true", help="decode with --exact too")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from PIL import Image
    from common import blas_in_clc, parse_sizes, synthetic

    w, h = parse_sizes(args.size)[0]
    env = dict(os.environ)
    if args.model:
        env["CLC_MODEL"] = str(Path(args.model).resolve())
    res: dict = {"images": args.images, "size": f"{w}x{h}", "quality": args.quality, "refs": args.refs,
                 "command": " ".join(["benchmarks/batch.py", *(argv if argv is not None else sys.argv[1:])])}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        if args.source:
            from clccodec.io.images import list_images

            for f in list_images(args.source)[: args.images]:
                shutil.copy(f, src / f.name)
        else:
            for i in range(args.images):
                Image.fromarray(synthetic(h, w, seed=i)).save(src / f"img{i:03d}.png")
        files = sorted(map(str, src.iterdir()))
        clc_dir = Path(tmp) / "clc"

        def decode(out: str, *extra: str) -> list[str]:  # the .clc files exist only once encode has run
            return ["decode", *sorted(map(str, clc_dir.glob("*.clc"))), "-o", f"{tmp}/{out}", "--device", "cpu", *extra]

        runs = {"encode": lambda: ["encode", *files, "-o", str(clc_dir), "-q", f"{args.quality:g}", "--refs",
                                   str(args.refs), "--device", "cpu"],
                "decode": lambda: decode("dec")}
        if args.exact:
            runs["decode --exact"] = lambda: decode("dec_exact", "--exact")
        for name, cmd in runs.items():
            wall, per_file, _ = run(cmd(), env)
            res[name] = {"wall_s": wall, "images_per_s": len(files) / wall, "per_file_s": per_file,
                         "median_file_s": statistics.median(per_file) if per_file else None,
                         "start_and_load_s": wall - sum(per_file)}
    res["loadavg_at_end"] = list(os.getloadavg())
    res["blas"] = blas_in_clc()
    print(f"clc batch: {args.images} images {w}x{h}, quality {args.quality:g}, M={args.refs}, {os.cpu_count()} CPUs, "
          f"load average at end {res['loadavg_at_end'][0]:.2f}\n  BLAS in clc: {res['blas']}")
    for name in runs:
        r = res[name]
        print(f"  clc {name:<15} {r['wall_s']:7.2f} s wall  {r['images_per_s']:.3f} images/s  "
              f"median {r['median_file_s']:.2f} s per file  start + model load {r['start_and_load_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
