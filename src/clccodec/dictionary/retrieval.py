"""PCA + FAISS nearest-neighbour search over retrieval features (shared by build-dict, encoding and training)."""

from __future__ import annotations

import faiss
import numpy as np
from sklearn.decomposition import PCA


class RetrievalIndex:
    """Keys are PCA projections of SPP features; search is exact L2 (IndexFlatL2: K is at most a few 10^4)."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, keys: np.ndarray) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.index = faiss.IndexFlatL2(self.keys.shape[1])
        self.index.add(self.keys)

    @classmethod
    def fit(cls, fit_features: np.ndarray, key_features: np.ndarray, dim: int = 256,
            seed: int = 0) -> "RetrievalIndex":
        """PCA fitted on `fit_features` (all crops), keys = projections of `key_features` (representatives)."""
        dim = max(1, min(dim, fit_features.shape[0] - 1, fit_features.shape[1]))
        pca = PCA(n_components=dim, random_state=seed)
        pca.fit(fit_features.astype(np.float32))
        mean, comps = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        return cls(mean, comps, (key_features.astype(np.float32) - mean) @ comps.T)

    def project(self, features: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((features.astype(np.float32) - self.mean) @ self.components.T)

    def search(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        return self.index.search(self.project(features), k)

    def __len__(self) -> int:
        return self.index.ntotal
