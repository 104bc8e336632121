"""`clc build-dict`: crops -> SPP features -> PCA -> MiniBatchKMeans -> representatives -> keys + int8 values.

    crops      a grid of crop x crop squares in every image (stride = crop: non-overlapping), centred
    features   SPP {1, 2, 4} of the extractor's map (latent: g_a(crop), one pass also gives the values)
    PCA        to 256 dims (fewer when there are fewer crops), fitted on all crops
    clusters   MiniBatchKMeans with K clusters (when there are no more crops than K: every crop is an entry)
    entries    the member nearest each centroid (a cluster left empty gives its place to the crop farthest from
               the other entries); key = its PCA projection, value = values_to_int8(
               model.reference_values(crop)), (C_r, crop/16, crop/16) int8
    provenance source file names, sha256, crop counts, where each entry comes from, license note

Deterministic for the same inputs, options and seed (on one machine: BLAS thread counts may change the last
bits of float sums).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from .pictures import encode_picture
from ..errors import DictionaryError, ImageError, UsageError
from ..format.ids import MODEL_ID_BYTES
from ..io.images import list_images, load_image
from ..model.reference import values_to_int8
from ..format.clcdict import DictData
from .features import EXTRACTORS, make_extractor
from .retrieval import fit_pca, project
from .store import ReferenceDictionary

DEFAULT_CLUSTERS = 3000
DEFAULT_CROP = 256
DEFAULT_PCA_DIMS = 256
DEFAULT_LICENSE = "unspecified: check the licenses of the source images before redistributing this file"


@dataclass
class BuildOptions:
    clusters: int = DEFAULT_CLUSTERS
    crop: int = DEFAULT_CROP
    stride: int | None = None  # None: = crop (non-overlapping)
    features: str = "latent"
    weights: str | Path | None = None  # ResNet-50 state dict (features = resnet50)
    pca_dims: int = DEFAULT_PCA_DIMS
    seed: int = 0
    batch: int = 16
    license: str = DEFAULT_LICENSE
    pattern: str | None = None  # glob of file names to use (e.g. "unsplash_*.png"); None: every image
    pictures: bool = False  # also store the source photos (PNG) for block copy (blockcopy.py)

    def check(self) -> None:
        if self.clusters < 1:
            raise UsageError(f"--clusters must be at least 1, got {self.clusters}")
        if self.crop < 64 or self.crop % 16:
            raise UsageError(f"--crop must be a multiple of 16 and at least 64, got {self.crop}")
        if self.stride is not None and not 16 <= self.stride:
            raise UsageError(f"--stride must be at least 16, got {self.stride}")
        if self.features not in EXTRACTORS:
            raise UsageError(f"unknown feature extractor '{self.features}' (use {' or '.join(EXTRACTORS)})")
        if self.pca_dims < 1:
            raise UsageError(f"PCA dimensions must be at least 1, got {self.pca_dims}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {self.batch}")


class Reporter:
    """Progress hooks (the CLI shows rich progress bars; the library default is silent)."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def note(self, msg: str) -> None: ...


@dataclass
class BuildReport:
    images: int = 0
    skipped: list[str] = field(default_factory=list)
    crops: int = 0
    clusters_requested: int = 0
    entries: int = 0
    seconds: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def dictionary_images(folder: str | Path, pattern: str | None = None) -> list[Path]:
    """The images below `folder` (recursively, matching `pattern`); Kodak images are refused."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a directory")
    return list_images(folder, recursive=True, pattern=pattern, refuse_kodak="build dictionaries from")


def crop_grid(h: int, w: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of a centred grid of crops; none if the image is smaller than a crop."""

    def axis(n: int) -> list[int]:
        if n < crop:
            return []
        count = (n - crop) // stride + 1
        off = (n - crop - (count - 1) * stride) // 2
        return [off + i * stride for i in range(count)]

    return [(y, x) for y in axis(h) for x in axis(w)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def representatives(keys: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, int]:
    """MiniBatchKMeans into k clusters; the member nearest each centroid represents it.

    Returns k sorted crop indices and the number of clusters that ended up empty (their places go to the crops
    farthest from the other entries, so the dictionary still has k distinct entries).
    """
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=max(1024, 4 * k), n_init=3,
                         max_no_improvement=20, reassignment_ratio=0.01)
    labels = km.fit_predict(keys)
    centres = km.cluster_centers_.astype(np.float32)
    d = ((keys - centres[labels]) ** 2).sum(1)
    order = np.lexsort((np.arange(len(keys)), d, labels))  # by cluster, then distance, then crop index
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order[1:]] != labels[order[:-1]]
    reps = order[first]
    empty = k - len(reps)
    if empty > 0:  # clusters no crop ended up in (frequent when K is close to the number of crops)
        reps = np.concatenate([reps, farthest_points(keys, reps, empty)])
    return np.sort(reps), empty


def farthest_points(keys: np.ndarray, chosen: np.ndarray, n: int) -> np.ndarray:
    """n more crops, each the one farthest from every entry chosen so far (greedy; ties: lower index)."""
    x = keys.astype(np.float64)
    sq = (x**2).sum(1)
    d = np.full(len(x), np.inf)
    for s in range(0, len(chosen), 512):  # squared distance to the nearest chosen entry, in blocks
        c = chosen[s : s + 512]
        d = np.minimum(d, (sq[:, None] + sq[None, c] - 2 * x @ x[c].T).min(1))
    d[chosen] = -1.0
    extra = []
    for _ in range(n):
        j = int(np.argmax(d))  # first maximum: deterministic
        extra.append(j)
        d = np.minimum(d, ((x - x[j]) ** 2).sum(1))
        d[j] = -1.0
    return np.asarray(extra, dtype=np.int64)


@torch.no_grad()
def build_dictionary(folder: str | Path, model: nn.Module, opts: BuildOptions | None = None,
                     reporter: Reporter | None = None, device: torch.device | str = "cpu"
                     ) -> tuple[ReferenceDictionary, BuildReport]:
    """Build a reference dictionary from every image under `folder` for `model` (a loaded CLCModel)."""
    opts = opts or BuildOptions()
    opts.check()
    rep = reporter or Reporter()
    report = BuildReport(clusters_requested=opts.clusters)
    device = torch.device(device)
    model = model.to(device).eval()
    if not hasattr(model, "model_id"):
        raise UsageError("the model has no id (load it with clccodec.model.weights.load_weights)")
    folder = Path(folder)
    files = dictionary_images(folder, opts.pattern)
    stride = opts.stride or opts.crop
    extractor = make_extractor(opts.features, model, opts.weights, device)
    shared_pass = opts.features == "latent"  # one g_a pass gives both the features and the values

    feats: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    origin: list[tuple[int, int, int]] = []  # (source index, y, x) of every crop
    sources: list[dict] = []
    pictures: list[bytes] = []  # with opts.pictures: PNG of sources[i]
    pending: list[np.ndarray] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.from_numpy(np.stack(pending)).to(device).permute(0, 3, 1, 2).float().div_(255)
        if shared_pass:
            y = model.g_a(x)
            feats.append(extractor.pool(y).cpu().numpy())
            vals.append(values_to_int8(model.value_proj(y)).cpu().numpy())
        else:
            feats.append(extractor.features(x).cpu().numpy().astype(np.float32))
            vals.append(values_to_int8(model.reference_values(x)).cpu().numpy())
        pending.clear()

    t0 = time.perf_counter()
    rep.stage(f"Features ({opts.features}) + values", len(files))
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            img = load_image(path)
        except ImageError as e:
            report.skipped.append(str(e).replace(str(path), rel))
            rep.advance()
            continue
        grid = crop_grid(img.height, img.width, opts.crop, stride)
        if not grid:
            report.skipped.append(f"{rel}: smaller than a {opts.crop}x{opts.crop} crop")
        else:
            s = len(sources)
            sources.append({"file": rel, "sha256": sha256_file(path),
                            "width": img.width, "height": img.height, "crops": len(grid)})
            if opts.pictures:
                pictures.append(encode_picture(img.pixels))
            for y, x in grid:
                pending.append(img.pixels[y : y + opts.crop, x : x + opts.crop])
                origin.append((s, y, x))
                if len(pending) == opts.batch:
                    flush()
        rep.advance()
    flush()
    if len(origin) < 2:
        raise DictionaryError(f"found {len(origin)} crop(s) of {opts.crop}x{opts.crop} in {len(files)} image(s) "
                              f"under {folder}: need at least 2 (use a smaller --crop or more images)")
    features = np.concatenate(feats, 0)
    values = np.concatenate(vals, 0)
    del feats, vals
    report.images, report.crops = len(sources), len(features)
    report.seconds["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rep.stage(f"PCA to {min(opts.pca_dims, len(features) - 1, features.shape[1])} dims", None)
    mean, comps = fit_pca(features, opts.pca_dims, opts.seed)
    keys = project(features, mean, comps)
    del features
    report.seconds["pca"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = len(keys)
    if n <= opts.clusters:
        report.notes.append(f"only {n} crops for {opts.clusters} clusters: every crop becomes an entry (K = {n})")
        rep.note(report.notes[-1])
        reps, k = np.arange(n), n
    else:
        rep.stage(f"Clustering {n} crops into {opts.clusters}", None)
        reps, empty = representatives(keys, opts.clusters, opts.seed)
        k = len(reps)
        if empty:
            report.notes.append(f"{empty} of {opts.clusters} clusters ended up empty: their places went to the "
                                "crops farthest from the other entries")
            rep.note(report.notes[-1])
    report.entries = k
    report.seconds["clusters"] = time.perf_counter() - t0

    provenance = {
        "builder": f"clccodec {__version__} build-dict",
        "license": opts.license,
        "build": {"crops": n, "clusters_requested": opts.clusters, "clusters": k, "crop": opts.crop,
                  "stride": stride, "features": opts.features, "pca_dims": int(comps.shape[0]), "seed": opts.seed,
                  "pattern": opts.pattern, "pictures": bool(pictures)},
        "sources": sources,
        "entries": [list(origin[j]) for j in reps],  # [source index, y, x] of each entry's crop
        "skipped": report.skipped,
    }
    data = DictData(bytes(model.model_id[:MODEL_ID_BYTES]), opts.features, extractor.fingerprint, opts.crop, stride,
                    mean, comps, np.ascontiguousarray(keys[reps]), np.ascontiguousarray(values[reps]), provenance,
                    pictures)
    return ReferenceDictionary(data), report
