#!/usr/bin/env python
"""Retrieval at archive scale: build time, time per query image and recall@3 of the IVF index against exact search.

    python benchmarks/retrieval_scale.py                        # K = 3,000, 30,000, 300,000
    python benchmarks/retrieval_scale.py --sizes 3000,30000 --json retrieval.json

Keys: up to the default dictionary's size (1,045 entries) its real keys; beyond that, this machine cannot extract
the crops (300,000 crops of 256² from photos we may use), so larger dictionaries are **synthetic**: each key is a
real key plus Gaussian noise (per dimension, `--spread` x that dimension's standard deviation over the real keys), i.e.
clusters shaped like the real ones. Queries are real: the query vectors the encoder makes (both views, the
default query mode) for `--images` held-out training photos (the validation split of ../shared/data/train, never
Kodak), projected with the dictionary's PCA.

For each K: the exact index (IndexFlatL2) and the IVF index the codec uses from IVF_MIN_ENTRIES on
(retrieval.ivf_index: its lists, its probes), their build seconds, the median seconds per query image (all its
query vectors in one search, k = M + CANDIDATES_PER_QUERY as the encoder asks), and recall@3: the share of the
exact top-3 entries per query image (after the encoder's merge of its query vectors) that the IVF search also
returns as its top 3.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def query_sets(n_images: int) -> tuple[list[list[np.ndarray]], object]:
    """Real query vectors (PCA-projected, one list of arrays per image) from held-out training photos."""
    import torch

    from clccodec.api import Codec
    from clccodec.dictionary.features import query_features
    from clccodec.io.images import pad_to_multiple, to_tensor
    from clccodec.model.config import PAD_MULTIPLE
    from clccodec.training.data import ImageSet

    codec = Codec(device="cpu")
    d = codec.dictionary
    val = ImageSet.load(str(ROOT.parent / "shared" / "data" / "train"), "val", 0.05, 64)
    out = []
    with torch.no_grad():
        for img in val.images[:n_images]:
            x = pad_to_multiple(to_tensor(img, torch.device("cpu")), PAD_MULTIPLE)
            views = query_features(d.extractor(codec.model), x, d.data.crop, d.query, d.rotate)
            index = d.index()
            out.append([index_project(index, v) for v in views])
    return out, d


def index_project(index, feats: np.ndarray) -> np.ndarray:
    from clccodec.dictionary.retrieval import project

    return project(feats, index.mean, index.components)


def synthetic_keys(real: np.ndarray, k: int, spread: float, seed: int) -> np.ndarray:
    if k <= len(real):
        return real[:k].copy()
    rng = np.random.default_rng(seed)
    base = real[rng.integers(0, len(real), k)]
    return (base + rng.normal(0, 1, base.shape).astype(np.float32) * (spread * real.std(0))).astype(np.float32)


def top3(index, views: list[np.ndarray], k: int) -> list[int]:
    from clccodec.dictionary.retrieval import merge_results

    return merge_results([index.search(v, k) for v in views], 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="3000,30000,300000")
    p.add_argument("--images", type=int, default=24, help="held-out training photos whose queries are timed")
    p.add_argument("--spread", type=float, default=0.35)
    p.add_argument("--probes", type=int, default=None, help="IVF lists searched (default: the codec's IVF_PROBES)")
    p.add_argument("--json")
    args = p.parse_args(argv)

    import faiss

    sys.path.insert(0, str(HERE))
    from common import blas_here

    from clccodec.dictionary.retrieval import IVF_PROBES, flat_index, ivf_index, ivf_lists
    from clccodec.dictionary.retrieval import CANDIDATES_PER_QUERY

    probes = args.probes or IVF_PROBES
    queries, d = query_sets(args.images)
    k = 3 + CANDIDATES_PER_QUERY
    real = np.ascontiguousarray(d.data.keys, dtype=np.float32)
    rows = []
    print(f"retrieval scale: {len(queries)} query images ({sum(len(v) for q in queries for v in q)} query vectors), "
          f"{real.shape[1]} dims, k = {k}, FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} threads, "
          f"{os.cpu_count()} CPUs; BLAS {blas_here()}")
    for size in (int(s) for s in args.sizes.split(",")):
        keys = synthetic_keys(real, size, args.spread, seed=size)
        t = time.perf_counter()
        exact = flat_index(keys)
        t_exact = time.perf_counter() - t
        t = time.perf_counter()
        ivf = ivf_index(keys, probes=probes)
        t_ivf = time.perf_counter() - t
        res = {}
        for name, index in (("exact", exact), ("ivf", ivf)):
            top3(index, queries[0], k)  # warm-up
            times, tops = [], []
            for q in queries:
                t = time.perf_counter()
                tops.append(top3(index, q, k))
                times.append(time.perf_counter() - t)
            res[name] = (statistics.median(times), tops)
        recall = float(np.mean([len(set(a) & set(b)) / 3 for a, b in zip(res["exact"][1], res["ivf"][1])]))
        row = {"entries": size, "synthetic": size > len(real), "ivf_lists": ivf_lists(size), "ivf_probes": probes,
               "build_exact_s": t_exact, "build_ivf_s": t_ivf, "query_exact_ms": 1000 * res["exact"][0],
               "query_ivf_ms": 1000 * res["ivf"][0], "recall_at_3": recall}
        rows.append(row)
        print(f"  K = {size:>7,}{' (synthetic)' if row['synthetic'] else ' (real)     '}  build exact "
              f"{t_exact:6.2f} s, IVF{row['ivf_lists']}/{probes} {t_ivf:6.2f} s   per query image: exact "
              f"{row['query_exact_ms']:7.2f} ms, IVF {row['query_ivf_ms']:6.2f} ms   recall@3 {recall:.3f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(["benchmarks/retrieval_scale.py",
                                                                    *(argv or sys.argv[1:])]),
                                               "spread": args.spread, "images": len(queries), "k": k,
                                               "blas": blas_here(), "results": rows}, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
