#!/usr/bin/env python
"""Batch throughput of the real CLI: `clc encode DIR/*.png -o out/` and `clc decode out/*.clc -o dec/`.

    python benchmarks/batch.py                                   # 8 synthetic 768x512 photos, shipped model, M = 3
    python benchmarks/batch.py --images 16 --json batch_cpu.json
    python benchmarks/batch.py --images 2 --size 64x64 --model tiny.pt        # smoke run
    python benchmarks/batch.py --source ../shared/data/kodak --images 24 --ray --repeat 2 --build-dict 12

One `clc` process per direction (one model load per batch, as a user runs it); images/s = images / wall seconds
of the whole process, start-up and model load included, and also per image from the per-file lines `clc` prints
(coding + file I/O of that file). The images are benchmarks/common.py's synthetic pattern with a different seed
each (or --source: the first N images of a folder).

--ray: also `clc encode SRC/ -o out/ --engine ray` on the same images (2 workers of one thread on 2 cores), with a
Ray runtime the process starts itself and with one already running (`ray start --head`, `--address auto`: a
cluster's case), alternated with the local encode `--repeat` times (medians compared: Ray's overhead on one
machine), their files checked byte for byte against the local ones. --build-dict N: `clc build-dict`
(K = 64) on N training photos (never Kodak), local and with --engine ray: seconds per 1,000 crops of the whole
process.
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
    p.add_argument("--ray", action="store_true", help="also encode with --engine ray, alternated (--repeat)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each encode with --ray (medians)")
    p.add_argument("--build-dict", type=int, default=0, metavar="N",
                   help="time build-dict on N training photos, local and with --engine ray")
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
        if args.ray:
            res["ray"] = compare_ray(files, src, Path(tmp), args, env)
        if args.build_dict:
            res["build_dict"] = build_dict_times(args.build_dict, Path(tmp), env)
    res["loadavg_at_end"] = list(os.getloadavg())
    res["blas"] = blas_in_clc()
    print(f"clc batch: {args.images} images {w}x{h}, quality {args.quality:g}, M={args.refs}, {os.cpu_count()} CPUs, "
          f"load average at end {res['loadavg_at_end'][0]:.2f}\n  BLAS in clc: {res['blas']}")
    for name in runs:
        r = res[name]
        print(f"  clc {name:<15} {r['wall_s']:7.2f} s wall  {r['images_per_s']:.3f} images/s  "
              f"median {r['median_file_s']:.2f} s per file  start + model load {r['start_and_load_s']:.2f} s")
    if "ray" in res:
        r = res["ray"]
        for name, what in (("local", "local"), ("ray", "--engine ray"), ("ray_running", "--engine ray, Ray running")):
            print(f"  clc encode ({what}) median of {len(r[name])}: {r[name + '_s']:7.2f} s wall  "
                  f"{len(files) / r[name + '_s']:.3f} images/s")
        print(f"  Ray / local wall time: {r['ray_over_local']:.3f} (Ray started by clc), {r['ray_running_over_local']:.3f} "
              f"(Ray already running); Ray files byte-identical: {r['byte_identical']}")
    for name, b in res.get("build_dict", {}).items():
        print(f"  build-dict ({name:<5}) {b['wall_s']:7.2f} s for {b['crops']} crops: {b['s_per_1000_crops']:.1f} s "
              "per 1,000 crops")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def compare_ray(files: list[str], src: Path, tmp: Path, args: argparse.Namespace, env: dict) -> dict:
    """Local and Ray encodes of the same images, alternated: Ray started by each `clc` process ("ray"), and Ray
    already running on the machine, as on a cluster (`ray start --head`, then --address auto: "ray_running");
    medians and the byte check."""
    common = ["-q", f"{args.quality:g}", "--refs", str(args.refs), "--device", "cpu", "--quiet"]
    ray_bin = str(Path(sys.executable).with_name("ray"))
    walls: dict[str, list[float]] = {"local": [], "ray": [], "ray_running": []}
    for i in range(args.repeat):
        wall, _, _ = run(["encode", *files, "-o", f"{tmp}/rl{i}/", *common], env)
        walls["local"].append(wall)
        wall, _, _ = run(["encode", str(src), "-o", f"{tmp}/rr{i}", "--engine", "ray", *common], env)
        walls["ray"].append(wall)
        subprocess.run([ray_bin, "start", "--head", "--num-cpus", str(os.cpu_count()), "--include-dashboard",
                        "false", "--disable-usage-stats"], capture_output=True, check=True, env=env)
        try:
            time.sleep(3)  # (its worker processes start)
            wall, _, _ = run(["encode", str(src), "-o", f"{tmp}/ra{i}", "--engine", "ray", "--address", "auto",
                              *common], env)
            walls["ray_running"].append(wall)
        finally:
            subprocess.run([ray_bin, "stop"], capture_output=True, env=env)
        print(f"  run {i + 1}: local {walls['local'][-1]:.2f} s, ray {walls['ray'][-1]:.2f} s, ray already running "
              f"{wall:.2f} s", file=sys.stderr, flush=True)
    same = all((tmp / "rl0" / (Path(f).stem + ".clc")).read_bytes() == (tmp / d / (Path(f).stem + ".clc"))
               .read_bytes() for f in files for d in ("rr0", "ra0"))
    out: dict = {k: v for k, v in walls.items()}
    for k, v in walls.items():
        out[f"{k}_s"] = statistics.median(v)
    out["ray_over_local"] = out["ray_s"] / out["local_s"]
    out["ray_running_over_local"] = out["ray_running_s"] / out["local_s"]
    out["byte_identical"] = same
    return out


def build_dict_times(n: int, tmp: Path, env: dict) -> dict:
    """build-dict on n training photos (the training split's first n, never Kodak), local and on Ray."""
    from clccodec.training.data import training_images

    photos = tmp / "dict_photos"
    photos.mkdir()
    for path in training_images(HERE.parent.parent / "shared" / "data" / "train")[:n]:
        shutil.copy(path, photos / path.name)
    out = {}
    for name, extra in (("local", []), ("ray", ["--engine", "ray"])):
        wall, _, err = run(["build-dict", str(photos), "-o", str(tmp / f"{name}.clcdict"), "-k", "64", *extra], env)
        crops = int(re.search(r"from (\d+) crops", err).group(1))
        out[name] = {"wall_s": wall, "crops": crops, "s_per_1000_crops": 1000 * wall / crops}
    return out


if __name__ == "__main__":
    sys.exit(main())
