"""Training-time reference dictionary.

Fixed 256x256 crops of the training split; their analysis latents are recomputed by the current g_a every
`refresh` steps (a memory bank: cheap, and close to what `clc build-dict` would produce from the same model).
Retrieval uses the same features as the real dictionary (SPP of y, PCA, FAISS) and by default never returns a
crop of the query's own source image, so the model does not learn to expect a copy of itself. With `related`
the references instead start with the crops of the query's own photo (overlapping it or not: content it shares,
like a sibling view in a collection), then the nearest entries of other photos.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..dictionary.features import spp
from ..dictionary.retrieval import RetrievalIndex
from ..io.images import to_tensor
from .data import ImageSet


class ReferenceBank:
    def __init__(self, images: ImageSet, crop: int = 256, per_image: int = 2, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        crops, src = [], []
        for i, img in enumerate(images.images):
            for _ in range(per_image):
                y0 = rng.integers(0, img.shape[0] - crop + 1)
                x0 = rng.integers(0, img.shape[1] - crop + 1)
                crops.append(img[y0 : y0 + crop, x0 : x0 + crop])
                src.append(i)
        self.crops = np.stack(crops)
        self.src = np.asarray(src)
        self.latents: Tensor | None = None
        self.index: RetrievalIndex | None = None

    def __len__(self) -> int:
        return len(self.crops)

    @torch.no_grad()
    def refresh(self, g_a: torch.nn.Module, device: torch.device, amp: bool, batch: int = 16) -> None:
        lat = []
        for s in range(0, len(self.crops), batch):
            x = to_tensor(self.crops[s : s + batch]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                lat.append(g_a(x).float())
        self.latents = torch.cat(lat).half()
        feats = spp(self.latents).cpu().numpy()
        self.index = RetrievalIndex.fit(feats, feats)

    def retrieve(self, y: Tensor, m: int, exclude_src: np.ndarray | None, related: bool = False) -> np.ndarray:
        """Top-m bank entries for each latent in y (B, M, h, w), skipping entries from excluded sources; with
        `related`, the entries of each query's own source (exclude_src) come first."""
        feats = spp(y.detach()).cpu().numpy()
        _, nn = self.index.search(feats, m + 32)
        out = np.empty((len(feats), m), dtype=np.int64)
        for b, row in enumerate(nn):
            own = [] if exclude_src is None else [int(j) for j in np.flatnonzero(self.src == exclude_src[b])]
            keep = [j for j in row if j >= 0 and (exclude_src is None or self.src[j] != exclude_src[b])]
            out[b] = ((own if related else []) + keep)[:m]
        return out

    def values(self, value_proj: torch.nn.Module, idx: np.ndarray) -> Tensor:
        """(B, m) indices -> (B, m, C_r, h, w) reference values (gradient flows into the value projection)."""
        B, m = idx.shape
        lat = self.latents[torch.from_numpy(idx.reshape(-1)).to(self.latents.device)].float()
        v = value_proj(lat)
        return v.view(B, m, *v.shape[1:])
