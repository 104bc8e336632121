"""Classical codecs run live through Pillow on the same images: JPEG, WebP, AVIF, JPEG 2000.

Each codec writes a complete file into memory (exactly the bytes `Image.save` would put on disk: bpp counts the
whole container), decodes it back with Pillow, and is measured like the learned codec. Times are in-process
wall seconds of Pillow's encoder/decoder (no process start, no file I/O), so they are lower than the CLI
timings in anchor_data/measured_here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, features


@dataclass(frozen=True)
class ClassicalCodec:
    key: str
    label: str
    fmt: str  # Pillow format name
    param: str  # the swept setting
    values: tuple[int, ...]  # sweep, low rate first
    options: dict  # fixed save options
    feature: str | None = None  # Pillow feature that must be present
    as_list: bool = False  # the setting is passed as a one-element list (JPEG 2000's quality_layers)

    def available(self) -> bool:
        return self.feature is None or bool(features.check(self.feature))

    def encode(self, pixels: np.ndarray, value: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format=self.fmt, **self.options,
                                            **{self.param: [value] if self.as_list else value})
        return buf.getvalue()

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def description(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return (f"{self.label} via Pillow {_pillow_version()} ({self._library()}): Image.save(format={self.fmt!r}, "
                f"{opts}{', ' if opts else ''}{self.param}=Q), Q in {list(self.values)}; decoded with Pillow")

    def _library(self) -> str:
        feat, lib = {"JPEG": ("jpg", "libjpeg"), "WEBP": ("webp", "libwebp"), "AVIF": ("avif", "libavif"),
                     "JPEG2000": ("jpg_2000", "openjpeg")}[self.fmt]
        try:
            if feat == "jpg" and features.check_feature("libjpeg_turbo"):
                feat, lib = "libjpeg_turbo", "libjpeg-turbo"
            v = features.version(feat)
        except ValueError:
            v = None
        return f"{lib} {v}" if v else lib


def _pillow_version() -> str:
    import PIL

    return PIL.__version__


CODECS: dict[str, ClassicalCodec] = {c.key: c for c in (
    ClassicalCodec("jpeg", "JPEG 4:2:0 (Pillow)", "JPEG", "quality", (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                   {"subsampling": "4:2:0", "optimize": True}, "jpg"),
    ClassicalCodec("jpeg444", "JPEG 4:4:4 (Pillow)", "JPEG", "quality", (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                   {"subsampling": "4:4:4", "optimize": True}, "jpg"),
    ClassicalCodec("webp", "WebP (Pillow, method 6)", "WEBP", "quality", (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
                   {"method": 6}, "webp"),
    ClassicalCodec("avif", "AVIF 4:2:0 (Pillow, speed 6)", "AVIF", "quality", (10, 20, 30, 40, 50, 60, 70, 80, 90),
                   {"subsampling": "4:2:0", "speed": 6}, "avif"),
    ClassicalCodec("avif444", "AVIF 4:4:4 (Pillow, speed 6)", "AVIF", "quality", (10, 20, 30, 40, 50, 60, 70, 80, 90),
                   {"subsampling": "4:4:4", "speed": 6}, "avif"),
    # JPEG 2000 is swept by compression ratio (quality_layers=[ratio]), high ratio (low rate) first.
    ClassicalCodec("jpeg2000", "JPEG 2000 (Pillow/OpenJPEG)", "JPEG2000", "quality_layers",
                   (240, 160, 100, 64, 40, 24, 16, 12, 8), {"quality_mode": "rates", "irreversible": True},
                   "jpg_2000", as_list=True),
)}
DEFAULT = ("jpeg", "webp", "avif", "avif444")


def parse_codecs(spec: str | None) -> list[ClassicalCodec]:
    """'jpeg,webp,avif' -> codecs; 'none' or '' -> []; 'all' -> every known one; 'default' -> DEFAULT."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return []
    keys: list[str] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == "all":
            keys += list(CODECS)
        elif part == "default":
            keys += list(DEFAULT)
        elif part in CODECS:
            keys.append(part)
        else:
            raise KeyError(f"unknown codec '{part}' (known: {', '.join(CODECS)}, all, default, none)")
    return [CODECS[k] for k in dict.fromkeys(keys)]
