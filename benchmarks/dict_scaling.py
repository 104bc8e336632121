"""K scaling of reference dictionaries: build time, peak memory, .clcdict size, retrieval time per image.

Each build is a real `clc build-dict` run in its own process (wall time and that process's peak RSS from
wait4); retrieval is timed in this process with the real ReferenceDictionary.retrieve (two analysis passes:
the image and its 180-degree rotation, global SPP (the default query), PCA, FAISS search, merge) and, separately, the search alone.

    python benchmarks/dict_scaling.py --data ../shared/data/train --model src/clccodec/shipped/clc-full.pt \\
        --clusters 300 1000 3000 --stride 128 --json runs/dict_scaling.json

Without --model, a model with random weights of --config (tiny or full) is exported to a temporary file
(build time depends on the config; sizes on ref_channels and the crop). Query images are the training
split's validation photos (the trainer's hash split), never Kodak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.dictionary.features import query_features  # noqa: E402
from clccodec.dictionary.store import ReferenceDictionary  # noqa: E402
from clccodec.imageio import load_image, pad_to_multiple, to_tensor  # noqa: E402
from clccodec.model.codec import PAD_MULTIPLE, CLCModel  # noqa: E402
from clccodec.model.config import CONFIGS  # noqa: E402
from clccodec.model.weights import load_weights, prepare_for_export, save_weights  # noqa: E402
from clccodec.training.data import is_validation, training_images  # noqa: E402


def random_model(config: str, path: Path) -> Path:
    torch.manual_seed(0)
    m = CLCModel(CONFIGS[config])
    prepare_for_export(m)
    save_weights(m, path)
    return path


def timed_build(args: argparse.Namespace, model: Path, k: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "clccodec", "build-dict", str(args.data), "-o", str(out), "--model", str(model),
           "--clusters", str(k), "--crop", str(args.crop), "--device", "cpu", "--force", "--quiet"]
    if args.stride:
        cmd += ["--stride", str(args.stride)]
    if args.glob:
        cmd += ["--glob", args.glob]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stderr=log)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS and CPU time
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            log.seek(0)
            raise SystemExit(f"build failed ({p.returncode}): {log.read().decode()}")
    return {"build_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "bytes": out.stat().st_size}


def baseline_rss() -> float:
    """Peak RSS (MiB) of a process that only imports what build-dict imports: the floor under every number."""
    code = "import clccodec.cli, clccodec.dictionary.build, clccodec.model.weights, faiss, sklearn.cluster"
    p = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = 0
    return round(usage.ru_maxrss / 1024, 1)


@torch.no_grad()
def time_retrieval(dict_path: Path, model, images: list[Path], m: int) -> dict:
    d = ReferenceDictionary.load(dict_path)
    total, search, pixels = [], [], []
    for p in images:
        x = pad_to_multiple(to_tensor(load_image(p).pixels), PAD_MULTIPLE)
        d.retrieve(model, x, m)  # warm-up (index build, allocator)
        t = time.perf_counter()
        d.retrieve(model, x, m)
        total.append(time.perf_counter() - t)
        views = query_features(d.extractor(model), x, d.data.crop, d.query, d.rotate)
        index = d.index()
        t = time.perf_counter()
        for v in views:
            index.search(v, m + 8)
        search.append(time.perf_counter() - t)
        pixels.append(x.shape[2] * x.shape[3])
    return {"retrieve_ms_per_image": round(1000 * float(np.mean(total)), 1),
            "search_only_ms_per_image": round(1000 * float(np.mean(search)), 2),
            "query_images": len(images), "mean_megapixels": round(float(np.mean(pixels)) / 1e6, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--glob", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--clusters", type=int, nargs="+", default=[300, 1000, 3000])
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--query-images", type=int, default=10)
    ap.add_argument("--keep", default=None, help="folder to keep the built dictionaries in")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dict_scaling_"))
    keep = Path(args.keep) if args.keep else tmp
    keep.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else random_model(args.config, tmp / f"{args.config}.pt")
    model = load_weights(model_path)
    val = [p for p in training_images(args.data) if is_validation(p, 0.05)][: args.query_images]
    res = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "platform": platform.platform()},
           "model": str(model_path) if args.model else f"random {args.config} config",
           "config": model.cfg.name, "ref_channels": model.cfg.ref_channels, "crop": args.crop,
           "stride": args.stride, "data": str(args.data), "glob": args.glob,
           "import_only_peak_rss_mib": baseline_rss(), "runs": []}
    print(f"import-only peak RSS: {res['import_only_peak_rss_mib']} MiB", flush=True)
    for k in args.clusters:
        out = keep / f"k{k}.clcdict"
        row = {"clusters": k, **timed_build(args, model_path, k, out)}
        d = ReferenceDictionary.load(out)
        row["entries"] = len(d)
        row["crops"] = d.data.provenance["build"]["crops"]
        row.update(time_retrieval(out, model, val, args.refs))
        res["runs"].append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print("| K | entries | crops | build s | CPU s | peak RSS MiB | .clcdict bytes | retrieve ms/img | search ms/img |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res["runs"]:
        print(f"| {r['clusters']} | {r['entries']} | {r['crops']} | {r['build_s']} | {r['cpu_s']} | "
              f"{r['peak_rss_mib']} | {r['bytes']} | {r['retrieve_ms_per_image']} | "
              f"{r['search_only_ms_per_image']} |")


if __name__ == "__main__":
    main()
