"""`clc build-dict --engine ray`: the crop pass of a dictionary build spread over a pool of Ray workers.

The build's first pass (every crop of every image through the model: nearly all of its time) runs on Ray, one
image per call; each worker loads the model once and gives each image's crop features (and its PNG, with
--pictures). The driver then does what the local build does with them (dictionary/build.py `finish`: PCA,
k-means, the entries), and a second, short Ray pass computes the int8 values of the K entries only, from the
images they come from (the local build keeps every crop's values from its one pass: N x C x h x w bytes that
do not scale). Both passes use build.CropCoder, the local build's calls, so the file is the local build's
(a test checks it on one machine; across machines and thread counts float sums may differ in their last bits,
as for any two builds).

What stays on the driver: the features of every crop (N x F float32: the latent extractor's F = 21 x 320, about
27 kB per crop, so 10^6 crops need ~27 GB) and the clustering (FAISS k-means above build.SKLEARN_MAX_CROPS crops,
on a sample of at most FAISS_POINTS_PER_CENTROID crops per cluster).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import WorkerLostError
from .jobs import WorkerPool, connect, default_workers, worker_process_startup


class CropWorker:
    """One Ray actor of the build, for both passes: an item with no "corners" gives an image's crops' features,
    corners, source fields and PNG; one with corners gives those crops' int8 values."""

    def __init__(self, config: dict) -> None:
        worker_process_startup()
        import torch

        from ..dictionary.build import BuildOptions, CropCoder
        from ..model.weights import load_weights

        c = config
        torch.set_num_threads(max(1, c["threads"]))
        self.opts = BuildOptions(**c["opts"])
        device = torch.device("cpu")
        self.coder = CropCoder(load_weights(c["model"], device).eval(), self.opts, device)

    def run(self, items: list[dict]) -> list[dict]:
        return [self.values(i["file"], i["rel"], i["corners"]) if "corners" in i else self.features(i["file"], i["rel"])
                for i in items]

    def features(self, path: str, rel: str) -> dict:
        from ..dictionary.build import crop_grid, crops_of, sha256_file
        from ..dictionary.pictures import encode_picture
        from ..errors import ImageError
        from ..io.images import load_image

        opts = self.opts
        try:
            img = load_image(path)
        except ImageError as e:
            return {"rel": rel, "skipped": str(e).replace(path, rel)}
        grid = crop_grid(img.height, img.width, opts.crop, opts.stride or opts.crop)
        if not grid:
            return {"rel": rel, "skipped": f"{rel}: smaller than a {opts.crop}x{opts.crop} crop"}
        crops = crops_of(img.pixels, grid, opts.crop)
        feats = [self.coder.features_and_values(crops[s : s + opts.batch], values=False)[0]
                 for s in range(0, len(crops), opts.batch)]
        f = np.ascontiguousarray(np.concatenate(feats, 0), dtype=np.float32)
        return {"rel": rel, "sha256": sha256_file(Path(path)), "width": img.width, "height": img.height,
                "corners": json.dumps(grid), "dims": f.shape[1], "features": f.tobytes(),
                "picture": encode_picture(img.pixels) if opts.pictures else None}

    def values(self, path: str, rel: str, corners: str) -> dict:
        from ..dictionary.build import crops_of
        from ..io.images import load_image

        img = load_image(path)
        grid = [tuple(c) for c in json.loads(corners)]
        crops = crops_of(img.pixels, grid, self.opts.crop)
        v = np.concatenate([self.coder.values(crops[s : s + self.opts.batch])
                            for s in range(0, len(crops), self.opts.batch)], 0)
        return {"rel": rel, "shape": json.dumps(v.shape), "values": np.ascontiguousarray(v).tobytes()}


def build_dictionary_on_ray(folder: str | Path, model_path: str | Path, opts, reporter=None, *,
                            address: str | None = None, workers: int | None = None, worker_cpus: float = 1.0):
    """build.build_dictionary's result (a ReferenceDictionary and its BuildReport) with the crop passes on Ray
    (CPU workers); `model_path` a weights file every worker can read."""
    import torch

    from ..dictionary.build import CropCoder, Reporter, dictionary_images
    from ..errors import check_number
    from ..model.weights import load_weights

    opts.check()
    check_number("workers", workers, 1, integer=True, optional=True)
    check_number("worker_cpus", worker_cpus, 0.01)
    rep = reporter or Reporter()
    folder = Path(folder).resolve()  # workers run in other folders, on other nodes
    if opts.weights is not None:
        opts = replace(opts, weights=str(Path(opts.weights).resolve()))
    files = dictionary_images(folder, opts.pattern)
    model_path = os.path.abspath(model_path)
    coder = CropCoder(load_weights(model_path, torch.device("cpu")).eval(), opts, torch.device("cpu"))
    connect(address)
    workers = workers or default_workers(worker_cpus)
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()}

    config = {"opts": fields, "model": model_path, "threads": max(1, int(worker_cpus))}

    def run(items: list[dict], on_row=None) -> dict[str, dict]:
        """One pass on its own pool of workers (none holds the cluster's CPUs during the clustering)."""
        out = {}
        with WorkerPool(CropWorker, config, min(workers, len(items)), num_cpus=worker_cpus) as pool:
            for batch, rows in pool.map([[i] for i in items]):
                if isinstance(rows, WorkerLostError):  # a dictionary needs every image the listing found
                    raise WorkerLostError(f"{batch[0]['rel']}: {rows}; the build stopped") from None
                for row in rows:
                    out[row["rel"]] = row
                    if on_row:
                        on_row()
        return out

    return build_passes(run, folder, files, opts, rep, coder, workers)


def build_passes(run, folder: Path, files: list[Path], opts, rep, coder, workers: int) -> tuple:
    """The features pass (`run(items, on_row)`: one pass on Ray), the driver's clustering (build.finish) and the
    values pass."""
    from ..dictionary.build import Crops, finish

    t0 = time.perf_counter()
    rels = [p.relative_to(folder).as_posix() for p in files]
    rep.stage(f"Features ({opts.features}) on {workers} Ray workers", len(files))
    rows = run([{"file": str(p), "rel": r} for p, r in zip(files, rels)], rep.advance) if files else {}
    crops = Crops(np.zeros((0, 0), np.float32), [], [], [])
    feats = []
    for rel in rels:  # the local build's order
        row = rows.pop(rel)  # (each image's feature bytes freed as they are copied)
        if "skipped" in row:
            crops.skipped.append(row["skipped"])
            continue
        s, grid = len(crops.sources), json.loads(row["corners"])
        crops.sources.append({"file": rel, "sha256": row["sha256"], "width": row["width"], "height": row["height"],
                              "crops": len(grid)})
        crops.origin += [(s, y, x) for y, x in grid]
        feats.append(np.frombuffer(row["features"], dtype=np.float32).reshape(len(grid), row["dims"]))
        if opts.pictures:
            crops.pictures.append(bytes(row["picture"]))
    if feats:
        crops.features = np.concatenate(feats, 0)
    seconds = time.perf_counter() - t0

    def values_of(entries: np.ndarray) -> np.ndarray:
        wanted: dict[int, list[tuple[int, int]]] = {}
        for j in entries:
            s, y, x = crops.origin[int(j)]
            wanted.setdefault(s, []).append((y, x))
        items = [{"file": str(folder / crops.sources[s]["file"]), "rel": crops.sources[s]["file"],
                  "corners": json.dumps(c)} for s, c in wanted.items()]
        got = run(items)
        by_crop = {}
        for s, c in wanted.items():
            row = got[crops.sources[s]["file"]]
            v = np.frombuffer(row["values"], dtype=np.int8).reshape(json.loads(row["shape"]))
            by_crop |= {(s, y, x): v[i] for i, (y, x) in enumerate(c)}
        return np.stack([by_crop[crops.origin[int(j)]] for j in entries])

    return finish(crops, coder, opts, rep, len(files), folder, seconds, values_of)
