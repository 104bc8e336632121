"""`clc build-dict`: crops -> SPP features -> PCA -> k-means -> representatives -> keys + int8 values.

    crops      a grid of crop x crop squares in every image (stride = crop: non-overlapping), centred
    features   SPP {1, 2, 4} of the extractor's map (latent: g_a(crop), one pass also gives the values)
    PCA        to 256 dims (fewer when there are fewer crops), fitted on all crops
    clusters   k-means with K clusters (when there are no more crops than K: every crop is an entry): scikit-learn's
               MiniBatchKMeans up to SKLEARN_MAX_CROPS crops, FAISS k-means above (--kmeans)
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__
from ..defaults import SKLEARN_MAX_CROPS
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
KMEANS_METHODS = ("auto", "sklearn", "faiss")
FAISS_POINTS_PER_CENTROID = 256  # FAISS k-means trains on a sample of at most this many crops per cluster


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
    kmeans: str = "auto"  # KMEANS_METHODS (kmeans_method)

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
        kmeans_method(self.kmeans, 0)


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


def kmeans_method(choice: str, crops: int) -> str:
    """'auto': scikit-learn's MiniBatchKMeans up to SKLEARN_MAX_CROPS crops (how every dictionary so far was
    built), FAISS k-means above (trained on at most FAISS_POINTS_PER_CENTROID crops per cluster, GPU when
    faiss-gpu sees one)."""
    if choice not in KMEANS_METHODS:
        raise UsageError(f"--kmeans must be one of {', '.join(KMEANS_METHODS)}, got {choice!r}")
    return choice if choice != "auto" else ("sklearn" if crops <= SKLEARN_MAX_CROPS else "faiss")


def cluster(keys: np.ndarray, k: int, seed: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(label of every key, k centres)."""
    if method == "faiss":
        import faiss

        from .retrieval import gpu_faiss_available

        km = faiss.Kmeans(keys.shape[1], k, niter=20, seed=seed + 1, max_points_per_centroid=FAISS_POINTS_PER_CENTROID,
                          gpu=gpu_faiss_available())
        km.train(np.ascontiguousarray(keys, dtype=np.float32))
        labels = km.index.search(np.ascontiguousarray(keys, dtype=np.float32), 1)[1][:, 0]
        return labels.astype(np.int64), km.centroids.astype(np.float32)
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=max(1024, 4 * k), n_init=3,
                         max_no_improvement=20, reassignment_ratio=0.01)
    labels = km.fit_predict(keys)
    return labels, km.cluster_centers_.astype(np.float32)


def representatives(keys: np.ndarray, k: int, seed: int, method: str = "sklearn") -> tuple[np.ndarray, int]:
    """k-means into k clusters; the member nearest each centroid represents it.

    Returns k sorted crop indices and the number of clusters that ended up empty (their places go to the crops
    farthest from the other entries, so the dictionary still has k distinct entries).
    """
    labels, centres = cluster(keys, k, seed, method)
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


@dataclass
class Crops:
    """What the first pass over the images gives: a feature row per crop, where each crop comes from, the sources,
    and (from the local pass) every crop's int8 values; None where they are computed for the entries only."""

    features: np.ndarray  # (N, F) float32
    origin: list[tuple[int, int, int]]  # (source index, y, x) of every crop
    sources: list[dict]  # file (relative), sha256, width, height, crops
    skipped: list[str]
    values: np.ndarray | None = None  # (N, C_r, h, w) int8
    pictures: list[bytes] = field(default_factory=list)  # with opts.pictures: PNG of sources[i]


class CropCoder:
    """Features and reference values of batches of crops, for one model and extractor (the local build and each
    Ray worker of `clc build-dict --engine ray` use the same calls, so both give the same numbers)."""

    def __init__(self, model: nn.Module, opts: BuildOptions, device: torch.device) -> None:
        self.model, self.device = model, device
        self.extractor = make_extractor(opts.features, model, opts.weights, device)
        self.shared_pass = opts.features == "latent"  # one g_a pass gives both the features and the values

    def tensor(self, crops: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2).float().div_(255)

    @torch.no_grad()
    def features_and_values(self, crops: list[np.ndarray], values: bool = True
                            ) -> tuple[np.ndarray, np.ndarray | None]:
        x = self.tensor(crops)
        if self.shared_pass:
            y = self.model.g_a(x)
            f = self.extractor.pool(y).cpu().numpy()
            return f, values_to_int8(self.model.value_proj(y)).cpu().numpy() if values else None
        f = self.extractor.features(x).cpu().numpy().astype(np.float32)
        return f, self.values(crops) if values else None

    @torch.no_grad()
    def values(self, crops: list[np.ndarray]) -> np.ndarray:
        x = self.tensor(crops)
        if self.shared_pass:
            return values_to_int8(self.model.value_proj(self.model.g_a(x))).cpu().numpy()
        return values_to_int8(self.model.reference_values(x)).cpu().numpy()


def crops_of(img: np.ndarray, corners: list[tuple[int, int]], crop: int) -> list[np.ndarray]:
    return [img[y : y + crop, x : x + crop] for y, x in corners]


def extract(folder: Path, files: list[Path], coder: CropCoder, opts: BuildOptions, rep: Reporter) -> Crops:
    """The local first pass: every crop's features and values, in batches of opts.batch crops."""
    stride = opts.stride or opts.crop
    feats: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    out = Crops(np.zeros((0, 0), np.float32), [], [], [])
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            f, v = coder.features_and_values(pending)
            feats.append(f)
            vals.append(v)
            pending.clear()

    rep.stage(f"Features ({opts.features}) + values", len(files))
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            img = load_image(path)
        except ImageError as e:
            out.skipped.append(str(e).replace(str(path), rel))
            rep.advance()
            continue
        grid = crop_grid(img.height, img.width, opts.crop, stride)
        if not grid:
            out.skipped.append(f"{rel}: smaller than a {opts.crop}x{opts.crop} crop")
        else:
            s = len(out.sources)
            out.sources.append({"file": rel, "sha256": sha256_file(path),
                                "width": img.width, "height": img.height, "crops": len(grid)})
            if opts.pictures:
                out.pictures.append(encode_picture(img.pixels))
            for (y, x), c in zip(grid, crops_of(img.pixels, grid, opts.crop)):
                pending.append(c)
                out.origin.append((s, y, x))
                if len(pending) == opts.batch:
                    flush()
        rep.advance()
    flush()
    if feats:
        out.features, out.values = np.concatenate(feats, 0), np.concatenate(vals, 0)
    return out


@torch.no_grad()
def build_dictionary(folder: str | Path, model: nn.Module, opts: BuildOptions | None = None,
                     reporter: Reporter | None = None, device: torch.device | str = "cpu"
                     ) -> tuple[ReferenceDictionary, BuildReport]:
    """Build a reference dictionary from every image under `folder` for `model` (a loaded CLCModel)."""
    opts = opts or BuildOptions()
    opts.check()
    rep = reporter or Reporter()
    device = torch.device(device)
    model = model.to(device).eval()
    if not hasattr(model, "model_id"):
        raise UsageError("the model has no id (load it with clccodec.model.weights.load_weights)")
    folder = Path(folder)
    files = dictionary_images(folder, opts.pattern)
    coder = CropCoder(model, opts, device)
    t0 = time.perf_counter()
    crops = extract(folder, files, coder, opts, rep)
    seconds = time.perf_counter() - t0
    return finish(crops, coder, opts, rep, len(files), folder, seconds)


def finish(crops: Crops, coder: CropCoder, opts: BuildOptions, rep: Reporter, n_files: int, folder: str | Path,
           feature_seconds: float, values_of: Callable[[np.ndarray], np.ndarray] | None = None
           ) -> tuple[ReferenceDictionary, BuildReport]:
    """PCA, clustering, the entries and the file, from the first pass's crops. `values_of(entries)`: the int8
    values of those crops, where the first pass did not keep every crop's."""
    report = BuildReport(clusters_requested=opts.clusters, skipped=crops.skipped)
    if len(crops.origin) < 2:
        raise DictionaryError(f"found {len(crops.origin)} crop(s) of {opts.crop}x{opts.crop} in {n_files} image(s) "
                              f"under {folder}: need at least 2 (use a smaller --crop or more images)")
    features = crops.features
    report.images, report.crops = len(crops.sources), len(features)
    report.seconds["features"] = feature_seconds

    t0 = time.perf_counter()
    rep.stage(f"PCA to {min(opts.pca_dims, len(features) - 1, features.shape[1])} dims", None)
    mean, comps = fit_pca(features, opts.pca_dims, opts.seed)
    keys = project(features, mean, comps)
    report.seconds["pca"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = len(keys)
    method = kmeans_method(opts.kmeans, n)
    if n <= opts.clusters:
        report.notes.append(f"only {n} crops for {opts.clusters} clusters: every crop becomes an entry (K = {n})")
        rep.note(report.notes[-1])
        reps, k = np.arange(n), n
    else:
        rep.stage(f"Clustering {n} crops into {opts.clusters} ({method})", None)
        reps, empty = representatives(keys, opts.clusters, opts.seed, method)
        k = len(reps)
        if empty:
            report.notes.append(f"{empty} of {opts.clusters} clusters ended up empty: their places went to the "
                                "crops farthest from the other entries")
            rep.note(report.notes[-1])
    report.entries = k
    report.seconds["clusters"] = time.perf_counter() - t0
    if crops.values is not None:
        values = crops.values[reps]
    else:
        t0 = time.perf_counter()
        rep.stage(f"Values of the {k} entries", None)
        values = values_of(reps)
        report.seconds["values"] = time.perf_counter() - t0

    stride = opts.stride or opts.crop
    provenance = {
        "builder": f"clccodec {__version__} build-dict",
        "license": opts.license,
        "build": {"crops": n, "clusters_requested": opts.clusters, "clusters": k, "crop": opts.crop,
                  "stride": stride, "features": opts.features, "pca_dims": int(comps.shape[0]), "seed": opts.seed,
                  "pattern": opts.pattern, "pictures": bool(crops.pictures)} | (
                      {"kmeans": method} if method != "sklearn" else {}),
        "sources": crops.sources,
        "entries": [list(crops.origin[j]) for j in reps],  # [source index, y, x] of each entry's crop
        "skipped": report.skipped,
    }
    model = coder.model
    data = DictData(bytes(model.model_id[:MODEL_ID_BYTES]), opts.features, coder.extractor.fingerprint, opts.crop,
                    stride, mean, comps, np.ascontiguousarray(keys[reps]), np.ascontiguousarray(values), provenance,
                    crops.pictures)
    return ReferenceDictionary(data), report
