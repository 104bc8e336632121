#!/usr/bin/env python
"""--effort on Kodak through the CLI: BD-rate of each effort against effort 0, encode and decode seconds, and
the --target-bpp check.

    python benchmarks/effort_rd.py ../shared/data/kodak --efforts 0 3 6 9 --quality 1 2 3 4 \
        --json effort_rd.json --md effort_rd.md
    python benchmarks/effort_rd.py ../shared/data/kodak --target-bpp 0.5     # the rate-control check only
    python benchmarks/effort_rd.py photos/ --efforts 0 --quality 2 --model tiny.pt   # smoke run
    python benchmarks/effort_rd.py ../shared/data/train --held-out --limit 4 --efforts 0 9 --quality 1 2.5 4 \
        --model STAGE/clc-full.pt --dict STAGE/default.clcdict --json effort_held_out.json

For every (effort, quality) the images are encoded by one `clc encode IMAGES -o DIR/ -q Q --effort E` process
(the shipped model or --model, the default dictionary, M = 3: one model load, per-file seconds from its output
lines) and decoded by one `clc decode` process (default synthesis); bpp from the real file sizes, PSNR on 8-bit
RGB. BD-rate: the mean
curve over the images (bpp and PSNR averaged per quality), PSNR, points <= 1 bpp, against effort 0.
`--held-out`: IMAGES is a training folder, and the photos are its held-out ones (the hash split the trainer
validates on, at full size: no minimum side or downscaling):
what scripts/ship_candidate.sh measures before weights ship, so that weights which break effort are seen
(Kodak decides nothing). `--limit N` takes N images spread over the set. `--extend OLD.json` encodes only the images OLD
does not hold (same efforts and qualities) and reports over both sets, so a larger sample reuses the earlier
encodes. Kodak is the test set: report, never tune here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import bd_against, encode_decode, pct, report, spread, use_model


def run_point(images: list[Path], work: Path, effort: int, q: float | None, extra: list[str]) -> dict:
    qa = ["-q", f"{q:g}"] if q is not None else []
    return {"effort": effort, "quality": q, **encode_decode(images, work, [*qa, "--effort", str(effort), *extra])}


def pooled(point: dict, old_points: list[dict]) -> dict:
    """`point` with the per-image rows of the same (effort, quality) point of an earlier run added."""
    rows = point["images"] + next((o["images"] for o in old_points
                                   if (o["effort"], o["quality"]) == (point["effort"], point["quality"])), [])
    return point | {"images": rows} | {k: statistics.mean(r[k] for r in rows)
                                       for k in ("bpp", "psnr", "encode_s", "decode_s")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="folder of test images (Kodak), or with --held-out a training folder")
    ap.add_argument("--held-out", action="store_true", help="use IMAGES' held-out photos (the validation split)")
    ap.add_argument("--efforts", type=int, nargs="+", default=[0, 3, 6, 9])
    ap.add_argument("--quality", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--limit", type=int, help="use N images spread over the set")
    ap.add_argument("--target-bpp", type=float, help="instead: the --target-bpp check at effort --efforts[0]")
    ap.add_argument("--extend", help="an earlier --json of this script: skip its images, report over both")
    ap.add_argument("--model", help="weights file (default: the shipped model)")
    ap.add_argument("--dict", help="reference dictionary (default: the shipped one)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    use_model(args.model, args.dict)

    if args.held_out:
        from clccodec.training.config import TrainConfig
        from clccodec.training.data import is_validation, training_images

        fraction = TrainConfig.__dataclass_fields__["val_fraction"].default
        found = sorted(p for p in training_images(args.images) if is_validation(p, fraction))
    else:
        found = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png")
    images = spread(found, args.limit)
    old = json.loads(Path(args.extend).read_text()) if args.extend else {"images": [], "points": []}
    images = [p for p in images if p.stem not in old["images"]]
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    load = os.getloadavg()[0]
    out: dict = {"images": old["images"] + [p.stem for p in images], "cpus": os.cpu_count(), "omp_threads": threads}
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
                    p = pooled(run_point(images, Path(tmp), e, q, []), old["points"])
                    points.append(p)
                    print(f"effort {e} q {q:g}: {p['bpp']:.4f} bpp  {p['psnr']:.3f} dB  encode {p['encode_s']:.1f} s"
                          f"  decode {p['decode_s']:.2f} s per image", flush=True)
            out["points"] = points
            base = [p for p in points if p["effort"] == args.efforts[0]]
            summary = []
            for e in args.efforts:
                cur = [p for p in points if p["effort"] == e]
                bd_all, bd_le1 = bd_against(base, cur)
                summary.append({"effort": e, "bd_rate_le1bpp": bd_le1, "bd_rate_all": bd_all,
                                "encode_s": statistics.mean(p["encode_s"] for p in cur),
                                "decode_s": statistics.mean(p["decode_s"] for p in cur)})
            out["summary"] = summary
            lines = [f"### --effort on {len(out['images'])} images of {Path(args.images).name} (M = 3 asked, q "
                     f"{', '.join(f'{q:g}' for q in args.quality)}; {out['cpus']} CPUs, OMP threads {threads}, "
                     f"load average {load:.1f} at start)", "",
                     f"| effort | BD-rate vs effort {args.efforts[0]} (PSNR, <= 1 bpp) | (PSNR, all points) | "
                     "encode s / image | decode s / image |", "|---:|---:|---:|---:|---:|"]

            for s in summary:
                lines.append(f"| {s['effort']} | {pct(s['bd_rate_le1bpp'])} | {pct(s['bd_rate_all'])} | "
                             f"{s['encode_s']:.1f} | {s['decode_s']:.2f} |")
            lines += ["", "| effort | quality | bpp | PSNR dB |", "|---:|---:|---:|---:|"]
            lines += [f"| {p['effort']} | {p['quality']:g} | {p['bpp']:.4f} | {p['psnr']:.3f} |" for p in points]
            report("\n".join(lines), out, args.md, args.json)
            return 0
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
