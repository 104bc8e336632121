"""PCA + FAISS nearest-neighbour search over retrieval features (shared by build-dict, encoding and training).

FAISS and scikit-learn are imported on first use: a decoder fetches values by index and never needs them.
Where FAISS is not installed at all (the GPU training machine, which cannot install packages and where its
30 MB wheel does not fit the files that travel), an exact NumPy search stands in: the same neighbours, up to
float rounding of near-ties.
"""

from __future__ import annotations

import numpy as np


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


class RetrievalIndex:
    """Keys are PCA projections of SPP features; search is exact L2 (IndexFlatL2: K is at most a few 10^4)."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, keys: np.ndarray, gpu: bool = False) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.index = flat_index(self.keys, gpu)

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
