#!/usr/bin/env python
"""Do references pay for themselves, and do they beat AVIF and WebP? M = 0 against M = 1..5 on real bytes,
through the CLI, and classical codecs run live on the same test photos.

    python benchmarks/collection_rd.py ../shared/data/collections/strecha_mvs --pictures --refs 0 3 \
        --quality 1 2 3 4 5 6 --json collection_rd.json --md collection_rd.md
    python benchmarks/collection_rd.py ../shared/data/kodak --default-dict --refs 0 3    # Kodak, shipped dictionary
    python benchmarks/collection_rd.py collection/ --refs 0 1 --quality 2 --crop 64 --model tiny.pt   # smoke run

A collection folder holds a split.json ({"dictionary": [names], "test": [names]}): the dictionary is built from
the dictionary side with `clc build-dict` (every crop an entry when there are fewer than -k crops; its build
time is reported; `--pictures`: with the photos, for block copy), then the test side is encoded with each M and
quality by `clc encode --refs M --dict ...` and decoded by `clc decode`; bpp from the real files, PSNR on 8-bit
RGB. Printed: the BD-rate of each M against the first (PSNR; all points and <= 1 bpp) and the mean encode/decode
seconds, and the BD-rate of each M against each `--classical` codec (default AVIF 4:4:4 and WebP through Pillow,
evaluation/classical.py: libaom speed 6 / method 6; `none` skips them). `--default-dict` encodes every image of
the folder with the shipped dictionary instead. These images are test images: never train or tune on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import bd_against, clc, encode_decode, pct, report, spread, use_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--refs", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--quality", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--clusters", "-k", type=int, default=3000)
    ap.add_argument("--crop", type=int, help="build-dict crop size (default: build-dict's)")
    ap.add_argument("--stride", type=int, help="build-dict crop grid step (default: the crop size)")
    ap.add_argument("--effort", type=int, default=0, help="clc encode --effort (1: each file falls back to M = 0 "
                    "when references do not lower its real cost)")
    ap.add_argument("--pictures", action="store_true", help="build the dictionary with --pictures (block copy)")
    ap.add_argument("--default-dict", action="store_true", help="the shipped dictionary, every image tested")
    ap.add_argument("--limit", type=int, help="test N images spread over the test side")
    ap.add_argument("--classical", default="avif444,webp", help="classical codecs run on the same photos "
                    "(evaluation/classical.py keys, comma-separated; none: skip)")
    ap.add_argument("--model", help="weights file (default: the shipped model)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    use_model(args.model)

    folder = Path(args.folder)
    out: dict = {"folder": str(folder), "effort": args.effort, "cpus": os.cpu_count(),
                 "omp_threads": os.environ.get("OMP_NUM_THREADS", "all")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.default_dict:
            test = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg"))
            dict_args: list[str] = []
            label = "the shipped dictionary"
        else:
            split = json.loads((folder / "split.json").read_text())
            side = tmp / "dictionary_side"
            side.mkdir()
            for name in split["dictionary"]:
                (side / name).symlink_to((folder / name).resolve())
            test = [folder / n for n in split["test"]]
            t = time.perf_counter()
            build = ["build-dict", str(side), "-o", str(tmp / "c.clcdict"), "-k", str(args.clusters)]
            clc(*build, *(["--crop", str(args.crop)] if args.crop else []),
                *(["--stride", str(args.stride)] if args.stride else []),
                *(["--pictures"] if args.pictures else []))
            out["build_s"] = time.perf_counter() - t
            info = json.loads(clc_json("info", str(tmp / "c.clcdict")))
            out["dictionary"] = {k: info.get(k) for k in ("K", "crop", "stride", "feature_extractor", "bytes")}
            dict_args = ["--dict", str(tmp / "c.clcdict")]
            label = (f"a dictionary of its {len(split['dictionary'])} dictionary-side photos "
                     f"({info.get('K')} entries, built in {out['build_s']:.0f} s)")
        test = spread(test, args.limit)
        points = []
        for m in args.refs:
            for q in args.quality:
                enc = ["-q", f"{q:g}", "--refs", str(m), "--effort", str(args.effort), *dict_args]
                p = {"refs": m, "quality": q, **encode_decode(test, tmp, enc, dict_args)}
                points.append(p)
                print(f"M {m} q {q:g}: {p['bpp']:.4f} bpp  {p['psnr']:.3f} dB  encode {p['encode_s']:.2f} s  "
                      f"decode {p['decode_s']:.2f} s", flush=True)
    classical = run_classical_codecs(args.classical, test)
    base = [p for p in points if p["refs"] == args.refs[0]]
    summary = []
    for m in args.refs:
        cur = [p for p in points if p["refs"] == m]
        bd_all, bd_le1 = bd_against(base, cur)
        summary.append({"refs": m, "bd_rate_all": bd_all, "bd_rate_le1bpp": bd_le1,
                        "vs": {k: bd_against(c["points"], cur)[0] for k, c in classical.items()},
                        "encode_s": sum(p["encode_s"] for p in cur) / len(cur),
                        "decode_s": sum(p["decode_s"] for p in cur) / len(cur)})
    out |= {"test_images": [p.stem for p in test], "points": points, "summary": summary, "classical": classical}

    effort = f", encoder effort {args.effort}" if args.effort else ""
    vs = "".join(f" vs {c['label']} (PSNR, all) |" for c in classical.values())
    lines = [f"### References on {folder.name}: {len(test)} test images, {label}{effort}", "",
             f"| M | BD-rate vs M = {args.refs[0]} (PSNR, all) | (PSNR, <= 1 bpp) |{vs} encode s | decode s |",
             "|---:|---:|---:|" + "---:|" * len(classical) + "---:|---:|"]
    lines += [f"| {s['refs']} | {pct(s['bd_rate_all'])} | {pct(s['bd_rate_le1bpp'])} | "
              + "".join(f"{pct(s['vs'][k])} | " for k in classical)
              + f"{s['encode_s']:.2f} | {s['decode_s']:.2f} |" for s in summary]
    lines += [f"\n{c['label']}: {c['description']}; encode {c['encode_s']:.3f} s, decode {c['decode_s']:.3f} s per "
              "image (in process)" for c in classical.values()]
    report("\n".join(lines), out, args.md, args.json)
    return 0


def run_classical_codecs(spec: str, test: list[Path]) -> dict:
    """Each classical codec of `spec` on the test photos: its mean points (bpp, psnr) over its sweep, mean
    in-process seconds and its description; codecs this Pillow lacks are left out with a line on stderr."""
    from clccodec.evaluation.classical import parse_codecs
    from clccodec.evaluation.runner import load_images, run_classical

    images = load_images(test) if spec.strip().lower() != "none" else []
    out = {}
    for codec in parse_codecs(spec):
        if not codec.available():
            print(f"{codec.key}: not available in this Pillow, skipped", file=sys.stderr)
            continue
        run = run_classical(codec, images)
        a = run.averages()
        out[codec.key] = {"label": codec.label, "description": codec.description(),
                          "points": [{"bpp": b, "psnr": p} for b, p in zip(a["bpp"], a["psnr-rgb"])],
                          "encode_s": sum(a["encoding_time"]) / len(a["encoding_time"]),
                          "decode_s": sum(a["decoding_time"]) / len(a["decoding_time"])}
        print(f"{codec.key}: " + "  ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in out[codec.key]["points"]),
              flush=True)
    return out


def clc_json(*args: str) -> str:
    import subprocess

    return subprocess.run([sys.executable, "-m", "clccodec", *args, "--json"], capture_output=True, text=True,
                          check=True).stdout


if __name__ == "__main__":
    sys.exit(main())
