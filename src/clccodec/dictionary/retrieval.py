"""PCA + FAISS nearest-neighbour search over retrieval features (shared by build-dict, encoding and training).

Up to IVF_MIN_ENTRIES entries the search is exact (IndexFlatL2). Larger dictionaries (10^5 entries and more, built
from whole archives) get an inverted-file index (IndexIVFFlat: IVF_LISTS(K) lists, IVF_PROBES of them searched),
which answers in milliseconds where the exact search takes tens of milliseconds per query crop. Retrieval runs
in the encoder only: a file stores the indices it chose, so an approximate search can change which references an
encoder picks, never how a file decodes (docs/format.md). benchmarks/retrieval_scale.py measures its recall.

FAISS and scikit-learn are imported on first use: a decoder fetches values by index and never needs them.
Where FAISS is not installed at all (the GPU training machine, which cannot install packages and where its
30 MB wheel does not fit the files that travel), an exact NumPy search stands in: the same neighbours, up to
float rounding of near-ties.
"""

from __future__ import annotations

import numpy as np

# How an encoder queries a dictionary (dictionary/store.py with torch, encoding/numpy_encoder.py without): the
# features are the SPP of the extractor's map on these pyramid levels; images above QUERY_MAX_PIXELS are queried
# at a reduced size (bounded time and memory); each query vector fetches m + CANDIDATES_PER_QUERY hits (enough to
# fill m after de-duplication), merged by distance, from the unrotated image with one global query.
SPP_LEVELS = (1, 2, 4)
QUERY_MAX_PIXELS = 1 << 22


def query_size(h: int, w: int) -> tuple[int, int]:
    """The size (h, w) at which an image of h x w pixels is queried: itself up to QUERY_MAX_PIXELS, else an
    area-downscaled view of about that many pixels (features.query_view, and the numpy encoder's)."""
    if h * w <= QUERY_MAX_PIXELS:
        return h, w
    s = (QUERY_MAX_PIXELS / (h * w)) ** 0.5
    return max(64, int(h * s)), max(64, int(w * s))

CANDIDATES_PER_QUERY = 8
DEFAULT_QUERY = "global"
DEFAULT_MERGE = "distance"
DEFAULT_ROTATE = False


def gpu_faiss_available() -> bool:
    """True when this FAISS build has GPU support and sees a GPU (faiss-gpu + CUDA)."""
    import faiss

    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 - a broken GPU setup just means the CPU path
        return False


_GPU_RES = None


class ExactSearch:
    """Exact L2 search with NumPy: the stand-in for faiss.IndexFlatL2 where FAISS is not installed."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.norms = (self.keys.astype(np.float64) ** 2).sum(1)
        self.ntotal = len(self.keys)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float64)
        d = (q**2).sum(1, keepdims=True) - 2 * q @ self.keys.T.astype(np.float64) + self.norms
        idx = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, idx, 1).astype(np.float32), idx.astype(np.int64)


def flat_index(keys: np.ndarray, gpu: bool = False):
    """Exact L2 index over keys; on the GPU when asked for and available (results are the same up to float)."""
    global _GPU_RES
    try:
        import faiss
    except ImportError:
        return ExactSearch(keys)

    index = faiss.IndexFlatL2(keys.shape[1])
    if gpu and gpu_faiss_available():
        if _GPU_RES is None:
            _GPU_RES = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(_GPU_RES, 0, index)
    index.add(np.ascontiguousarray(keys, dtype=np.float32))
    return index


def fit_pca(features: np.ndarray, dim: int = 256, seed: int = 0, max_rows: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """PCA mean (F,) and components (D, F), D = min(dim, rows - 1, F); fitted on at most `max_rows` rows.

    The row subsample (for very large builds) is drawn with `seed`, so the result is deterministic.
    """
    n, f = features.shape
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        features = features[rows]
        n = max_rows
    from sklearn.decomposition import PCA

    dim = max(1, min(dim, n - 1, f))
    pca = PCA(n_components=dim, random_state=seed)
    pca.fit(features.astype(np.float32, copy=False))
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def project(features: np.ndarray, mean: np.ndarray, components: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(N, F) -> (N, D) keys, in chunks (bounded memory for big builds)."""
    out = np.empty((features.shape[0], components.shape[0]), dtype=np.float32)
    for s in range(0, features.shape[0], chunk):
        out[s : s + chunk] = (features[s : s + chunk].astype(np.float32) - mean) @ components.T
    return out


IVF_MIN_ENTRIES = 50_000  # from here on an inverted-file index (below, exact search is fast enough)
IVF_PROBES = 64  # lists searched per query: recall@3 0.986 at K = 300,000, 0.958 with 48 (retrieval_scale.py)
IVF_TRAIN_PER_LIST = 40  # training points per list (FAISS warns below 39)
IVF_TRAIN_ITERATIONS = 10


def ivf_lists(n: int) -> int:
    """Inverted lists for n entries: about 4 sqrt(n), as FAISS's guidelines suggest, a power of two."""
    return 1 << max(4, round(np.log2(4 * np.sqrt(n))))


def ivf_index(keys: np.ndarray, seed: int = 0, probes: int = IVF_PROBES, gpu: bool = False):
    """Approximate L2 index over many keys: IndexIVFFlat trained on a seeded subsample (deterministic)."""
    import faiss

    keys = np.ascontiguousarray(keys, dtype=np.float32)
    n, d = keys.shape
    lists = ivf_lists(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists)
    index.cp.seed = seed
    index.cp.niter = IVF_TRAIN_ITERATIONS
    sample = min(n, lists * IVF_TRAIN_PER_LIST)
    rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)) if sample < n else slice(None)
    index.train(keys[rows])
    index.add(keys)
    index.nprobe = min(probes, lists)
    if gpu and gpu_faiss_available():
        global _GPU_RES
        if _GPU_RES is None:
            _GPU_RES = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(_GPU_RES, 0, index)
    return index


def search_index(keys: np.ndarray, gpu: bool = False, exact: bool | None = None):
    """The index for these keys: exact below IVF_MIN_ENTRIES (or with exact=True), IVF above (exact=False forces
    it); exact NumPy search where FAISS is not installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return ExactSearch(keys)
    if exact is None:
        exact = len(keys) < IVF_MIN_ENTRIES
    return flat_index(keys, gpu) if exact else ivf_index(keys, gpu=gpu)


class RetrievalIndex:
    """Keys are PCA projections of SPP features; search is exact L2 (IndexFlatL2) up to IVF_MIN_ENTRIES entries,
    an inverted-file index above."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, keys: np.ndarray, gpu: bool = False,
                 exact: bool | None = None) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.index = search_index(self.keys, gpu, exact)

    @classmethod
    def fit(cls, fit_features: np.ndarray, key_features: np.ndarray, dim: int = 256,
            seed: int = 0) -> "RetrievalIndex":
        """PCA fitted on `fit_features` (all crops), keys = projections of `key_features` (representatives)."""
        mean, comps = fit_pca(fit_features, dim, seed)
        return cls(mean, comps, project(key_features, mean, comps))

    def search(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        return self.index.search(project(features, self.mean, self.components), k)

    def __len__(self) -> int:
        return self.index.ntotal


MERGE_MODES = ("distance", "rank")


def merge_results(results: list[tuple[np.ndarray, np.ndarray]], m: int, mode: str = "distance") -> list[int]:
    """Merge the hits of several queries (each (distances, indices) of shape (n, k)) into the top m entries.

    distance: every hit sorted by its distance (ties: lower index first), duplicates dropped.
    rank: the best hit of each query first (ordered by distance), then the second best of each, ...: spreads
    the references over the parts of the image the queries describe.
    """
    if mode not in MERGE_MODES:
        raise ValueError(f"unknown merge mode {mode!r}")
    d = np.concatenate([r[0] for r in results], 0)
    i = np.concatenate([r[1] for r in results], 0)
    rank = np.broadcast_to(np.arange(d.shape[1]), d.shape)
    d, i, rank = d.ravel(), i.ravel(), rank.ravel()
    ok = i >= 0
    d, i, rank = d[ok].astype(np.float64), i[ok], rank[ok]
    order = np.lexsort((i, d)) if mode == "distance" else np.lexsort((i, d, rank))
    out: list[int] = []
    seen: set[int] = set()
    for j in order:
        v = int(i[j])
        if v not in seen:
            seen.add(v)
            out.append(v)
            if len(out) == m:
                break
    return out
