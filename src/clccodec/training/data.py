"""Training images: decoded once into RAM, split into train/validation by file name, sampled as random crops.

Kodak is a test set and never appears here: the trainer refuses a folder that contains Kodak file names.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..imageio import list_images, to_tensor


def training_images(folder: str | Path) -> list[Path]:
    """Every image below `folder` (recursively); a folder holding Kodak images is refused."""
    return list_images(folder, recursive=True, refuse_kodak="train on")


def is_validation(path: Path, fraction: float) -> bool:
    """Stable split by a hash of the file name (independent of folder layout and file order)."""
    h = int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:4], "big")
    return h < fraction * 2**32


def load_rgb(path: Path, min_side: int, downscale_glob: str = "") -> np.ndarray:
    """Decode to uint8 HxWx3. Files whose name matches `downscale_glob` (low-quality JPEG sources) are downscaled
    (by up to 0.6, keeping the short side >= min_side) to hide their block artifacts."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if downscale_glob and fnmatch.fnmatchcase(path.name, downscale_glob):
            s = max(min_side / min(im.size), 0.6)
            if s < 1:
                im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


@dataclass
class ImageSet:
    names: list[str]
    images: list[np.ndarray]

    @classmethod
    def load(cls, folder: str | Path, split: str, val_fraction: float = 0.05, min_side: int = 256,
             downscale_glob: str = "") -> "ImageSet":
        names, images = [], []
        for p in training_images(folder):
            if (split == "val") != is_validation(p, val_fraction):
                continue
            img = load_rgb(p, min_side, downscale_glob)
            if min(img.shape[:2]) >= min_side:
                names.append(p.name)
                images.append(img)
        return cls(names, images)

    def __len__(self) -> int:
        return len(self.images)

    def random_crops(self, rng: np.random.Generator, n: int, size: int) -> tuple[torch.Tensor, np.ndarray]:
        """n random crops (with random flips) as float (n, 3, size, size) in [0, 1], and their source ids."""
        src = rng.integers(0, len(self.images), n)
        out = np.empty((n, size, size, 3), dtype=np.uint8)
        for k, i in enumerate(src):
            img = self.images[i]
            y0 = rng.integers(0, img.shape[0] - size + 1)
            x0 = rng.integers(0, img.shape[1] - size + 1)
            c = img[y0 : y0 + size, x0 : x0 + size]
            if rng.random() < 0.5:
                c = c[:, ::-1]
            if rng.random() < 0.5:
                c = c[::-1]
            out[k] = c
        return to_tensor(out), src

    def center_crop(self, i: int, size: int) -> torch.Tensor:
        img = self.images[i]
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        return to_tensor(img[None, y0 : y0 + size, x0 : x0 + size])
