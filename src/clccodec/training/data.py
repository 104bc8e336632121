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

from ..io.images import list_images, to_tensor


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


@dataclass(frozen=True)
class Box:
    """A square crop of one photo of an ImageSet, and how it is flipped."""

    image: int
    y0: int
    x0: int
    size: int
    flip_h: bool
    flip_v: bool


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

    def random_boxes(self, rng: np.random.Generator, n: int, size: int, multiple: int = 0) -> list[Box]:
        """n random crop boxes (with random flips), each in a random photo. multiple > 0: photos smaller than
        `size` shrink the boxes to the largest multiple of `multiple` that every drawn photo holds."""
        src = rng.integers(0, len(self.images), n)
        if multiple:
            fits = min(min(self.images[i].shape[:2]) for i in src) // multiple * multiple
            size = min(size, fits)
        boxes = []
        for i in src:
            h, w = self.images[i].shape[:2]
            y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            boxes.append(Box(int(i), y0, x0, size, bool(rng.random() < 0.5), bool(rng.random() < 0.5)))
        return boxes

    def cut(self, boxes: list[Box]) -> torch.Tensor:
        """The pixels of the boxes, flipped as they say, as float (n, 3, size, size) in [0, 1]."""
        out = np.empty((len(boxes), boxes[0].size, boxes[0].size, 3), dtype=np.uint8)
        for k, b in enumerate(boxes):
            c = self.images[b.image][b.y0 : b.y0 + b.size, b.x0 : b.x0 + b.size]
            if b.flip_h:
                c = c[:, ::-1]
            if b.flip_v:
                c = c[::-1]
            out[k] = c
        return to_tensor(out)

    @staticmethod
    def sources(boxes: list[Box]) -> np.ndarray:
        """The photo id of each box."""
        return np.array([b.image for b in boxes])

    def random_crops(self, rng: np.random.Generator, n: int, size: int) -> tuple[torch.Tensor, np.ndarray]:
        """n random crops (with random flips) as float (n, 3, size, size) in [0, 1], and their source ids."""
        boxes = self.random_boxes(rng, n, size)
        return self.cut(boxes), self.sources(boxes)

    def windows_around(self, rng: np.random.Generator, boxes: list[Box], size: int,
                       jitter: float = 0.0) -> torch.Tensor:
        """For each box, a `size` window of its photo that contains it (or lies inside it, for a window smaller
        than the box), placed at random (so its content sits at another offset, off the latent grid), flipped
        like the box, with a random per-channel gain in 1 +- jitter and offset in +- jitter / 3: content the
        crop shares, seen as a sibling photo would."""

        def start(box_start: int, box_size: int, extent: int) -> int:  # between box start and box end - size
            a, b = sorted((box_start, box_start + box_size - size))
            return int(rng.integers(max(0, a), min(b, extent - size) + 1))

        wins = []
        for b in boxes:
            h, w = self.images[b.image].shape[:2]
            wins.append(Box(b.image, start(b.y0, b.size, h), start(b.x0, b.size, w), size, b.flip_h, b.flip_v))
        x = self.cut(wins)
        if jitter:
            gain = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, (len(boxes), 3, 1, 1))).float()
            off = torch.from_numpy(rng.uniform(-jitter / 3, jitter / 3, (len(boxes), 3, 1, 1))).float()
            x = (x * gain + off).clamp_(0, 1)
        return x

    def center_crop(self, i: int, size: int) -> torch.Tensor:
        img = self.images[i]
        y0, x0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        return to_tensor(img[None, y0 : y0 + size, x0 : x0 + size])
