"""Reading and writing images, and the pad/crop between image and model geometry.

What happens to each kind of input (also in docs/usage.md):
* RGB 8-bit: coded as is.  * Grayscale (L, I;16, I, F): coded through the RGB model, decoded back to grayscale.
* Alpha (RGBA, LA, PA, palette transparency): kept as a separate 8-bit plane (format/alpha.py, lossless); an alpha
  that is opaque everywhere is no alpha.  * 16-bit: reduced to 8 bits (with a note).  * Palette: expanded.  * CMYK/YCbCr/LAB: converted to RGB.
* EXIF orientation is applied, so the decoded image looks the way viewers showed the original.
* Animated/multi-frame files are refused (a still-image codec cannot hold them faithfully).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError, UsageError
from ..format.alpha import has_transparency
from .files import FileSource, read_source

if TYPE_CHECKING:  # torch loads only where tensors are made (the torch-free decoder writes images too)
    import torch

MAX_PIXELS = 120_000_000  # beyond Pillow's bomb limit on purpose: large photos are a use case, not an attack
# what folders are searched for (training, dictionaries, evaluation)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"})
SIXTEEN_BIT_NOTE = "16-bit samples reduced to 8 bits"
OUTPUT_FORMATS = {".png": "PNG", ".ppm": "PPM", ".pgm": "PPM", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG", ".avif": "AVIF"}
LOSSY_OUTPUTS = {"JPEG": 95, "AVIF": 90, "WEBP": None}  # their default quality (None: lossless), all 4:4:4
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "AVIF"})  # the output formats that hold an alpha channel
# zlib level of PNG outputs: 1 writes a decoded 12 MP photo 4-6x faster than Pillow's default 6 (1.4 s instead of
# 6-9 s, a fifth of the whole decode) for a file about 10 % larger (Kodak: 11 %)
PNG_COMPRESS_LEVEL = 1


KODAK_PREFIX = "kodim"  # Kodak is the test set: folders that training or dictionaries read must not hold it


def list_images(sources: str | Path | Sequence[str | Path], *, recursive: bool = False, pattern: str | None = None,
                refuse_kodak: str | None = None) -> list[Path]:
    """The image files (IMAGE_SUFFIXES) of folders and/or files, for every command that reads many images.

    A folder gives its images sorted by path relative to it (hidden files skipped; below it too with
    `recursive`; only names matching the glob `pattern`), a file is taken as given, in the order given.
    `refuse_kodak` ("train on", "build dictionaries from"): refuse Kodak file names, saying what for. A missing
    source, or no image at all, is a UsageError.
    """
    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(s) for s in sources]
    named = ", ".join(map(str, paths))
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            walk = p.rglob(pattern or "*") if recursive else p.glob(pattern or "*")
            found += sorted((f for f in walk if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                             and not any(part.startswith(".") for part in f.relative_to(p).parts)),
                            key=lambda f: f.relative_to(p).as_posix())
        elif p.is_file():
            found.append(p)
        else:
            raise UsageError(f"{p}: no such file or folder")
    kodak = [f.name for f in found if f.name.lower().startswith(KODAK_PREFIX)]
    if refuse_kodak and kodak:
        raise UsageError(f"{named} contains Kodak images ({kodak[0]}, ...): Kodak is a test set, never "
                         f"{refuse_kodak} it")
    if not found:
        raise UsageError(f"no images found in {named}" + (f" matching {pattern}" if pattern else "")
                         + f" (looked for {' '.join(sorted(IMAGE_SUFFIXES))})")
    return found


@dataclass
class LoadedImage:
    pixels: np.ndarray  # uint8 (H, W, 3)
    grayscale: bool
    notes: list[str]  # things a user should know (alpha dropped, 16-bit rounded, ...)
    metadata: dict[str, bytes] = field(default_factory=dict)  # ICC / EXIF / XMP of the source (metadata.py)
    alpha: np.ndarray | None = None  # uint8 (H, W) where the source has transparency (format/alpha.py)

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


def _to_rgb(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """8-bit RGB pixels, whether the source is grayscale, and its alpha plane (None where it has none)."""
    alpha = None
    key = im.info.get("transparency")
    if key is not None and im.mode in ("I", "I;16"):  # a transparent gray level of a 16-bit image: keep the depth
        alpha = np.where(np.asarray(im) == key, 0, 255).astype(np.uint8)
    elif key is not None and im.mode in ("P", "L", "RGB"):  # a transparent index / colour
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in ("RGBa", "La", "PA"):  # premultiplied, or a palette with its own alpha: plain alpha
        im = im.convert("LA" if im.mode == "La" else "RGBA")
    if im.mode in ("RGBA", "LA"):
        alpha = np.array(im.getchannel("A"), dtype=np.uint8)
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    pixels, gray = _colour(im, notes)
    return pixels, gray, alpha if has_transparency(alpha) else None


def _colour(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, bool]:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        if peak > 255 and SIXTEEN_BIT_NOTE not in notes:
            notes.append(SIXTEEN_BIT_NOTE)
        g = np.clip(np.round(a * 255.0 / peak), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2), True
    if im.mode == "1":
        im = im.convert("L")
    if im.mode == "L":
        g = np.asarray(im, dtype=np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2), True
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8), False


# what the encoder takes: a file (path, bytes, binary file object), a PIL image, or a uint8 array
ImageSource = Union[FileSource, Image.Image, np.ndarray]


def load_image(src: ImageSource) -> LoadedImage:
    """Load any supported still image as 8-bit RGB (see the module doc for every conversion)."""
    notes: list[str] = []
    if isinstance(src, np.ndarray):
        a = src
        if a.dtype != np.uint8:
            raise ImageError(f"numpy images must be uint8, got {a.dtype}")
        if a.ndim == 2:
            return LoadedImage(np.repeat(a[:, :, None], 3, axis=2).copy(), True, notes)
        if a.ndim == 3 and a.shape[2] in (3, 4):
            alpha = np.ascontiguousarray(a[:, :, 3]) if a.shape[2] == 4 else None
            return LoadedImage(np.ascontiguousarray(a[:, :, :3]), False, notes,
                               alpha=alpha if has_transparency(alpha) else None)
        raise ImageError(f"unsupported array shape {a.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else "image"
    if not isinstance(src, Image.Image):
        src = read_source(src, ImageError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            prev = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            try:
                im = src if isinstance(src, Image.Image) else Image.open(io.BytesIO(src))
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    raise ImageError(f"{name}: animated or multi-frame image ({frames} frames) is not supported")
                if any(";16" in str(t.args) for t in getattr(im, "tile", None) or []):
                    notes.append(SIXTEEN_BIT_NOTE)  # e.g. 16-bit RGB PNG: Pillow itself keeps the high byte
                im.load()
                im = ImageOps.exif_transpose(im)
            finally:
                Image.MAX_IMAGE_PIXELS = prev
        pixels, gray, alpha = _to_rgb(im, notes)
        from ..format.metadata import read_metadata

        metadata = read_metadata(im, gray, notes)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: more than {MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError, TypeError, EOFError, IndexError, KeyError, ZeroDivisionError,
            struct.error) as e:  # Pillow's plugins raise any of these on corrupt input (benchmarks/fuzz.py)
        raise ImageError(f"{name}: cannot decode image ({e})") from None
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"{name}: empty image")
    return LoadedImage(np.ascontiguousarray(pixels), gray, notes, metadata, alpha)


def to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W), or a batch (N, H, W, 3) -> (N, 3, H, W), in [0, 1]."""
    import torch

    t = torch.from_numpy(np.array(pixels, copy=True)).to(device)
    # (the single-image path keeps its exact operation order: the strides it gives the encoder's input)
    t = t.permute(2, 0, 1).unsqueeze(0) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(255)


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) in [0, 1] -> uint8 (H, W, 3), rounding half to even."""
    import torch

    return x[0].nan_to_num(0.0).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate the last row/column to the next multiple (edges code cheaply and do not bleed into content)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    import torch.nn.functional as F

    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def gray_plane(pixels: np.ndarray) -> np.ndarray:
    """The gray level a grayscale source decodes to: the model codes gray as three equal channels, and the decoded
    level is their mean, rounded (half to even)."""
    return np.round(pixels.astype(np.float32).mean(axis=2)).astype(np.uint8)


def to_image(pixels: np.ndarray, grayscale: bool, alpha: np.ndarray | None = None) -> Image.Image:
    """A PIL image: RGB or L, with alpha RGBA or LA."""
    if grayscale:
        g = gray_plane(pixels)
        return Image.fromarray(g, "L") if alpha is None else Image.fromarray(np.dstack([g, alpha]), "LA")
    return Image.fromarray(pixels, "RGB") if alpha is None else Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def output_format(path: str | Path | None, default: str = "PNG") -> str:
    if path is None or str(path) == "-":
        return default
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"cannot write '{suffix or path}' images; use one of {', '.join(sorted(OUTPUT_FORMATS))}")
    fmt = OUTPUT_FORMATS[suffix]
    from PIL import features

    if fmt in ("AVIF", "WEBP") and not features.check(fmt.lower()):
        raise UsageError(f"this Pillow cannot write {fmt} images (it was built without lib{fmt.lower()})")
    return fmt


def drops_alpha(im: Image.Image, fmt: str) -> bool:
    """Whether writing `im` as `fmt` loses its alpha channel (JPEG, BMP and PPM have none)."""
    return im.mode in ("RGBA", "LA") and fmt not in ALPHA_FORMATS


def encode_image(im: Image.Image, fmt: str, metadata: dict[str, bytes] | None = None,
                 quality: int | None = None) -> bytes:
    """The image in `fmt`, with the source's ICC/EXIF/XMP `metadata` where the format can hold it. `quality`
    1..100 for the lossy outputs (None: LOSSY_OUTPUTS' default; WebP is lossless without one)."""
    from ..format.metadata import save_options

    if drops_alpha(im, fmt):  # (the CLI says so)
        im = im.convert(im.mode[:-1])
    buf = io.BytesIO()
    kw: dict = {}
    q = LOSSY_OUTPUTS.get(fmt) if quality is None else quality
    if fmt == "WEBP":  # exact: keep the colour under transparent pixels
        kw = {"lossless": True, "exact": True} if q is None else {"quality": q, "method": 6, "exact": True}
    elif fmt == "JPEG":
        kw = {"quality": q, "subsampling": 0}
    elif fmt == "AVIF":
        kw = {"quality": q, "subsampling": "4:4:4"}
    elif fmt == "PNG":
        kw = {"compress_level": PNG_COMPRESS_LEVEL}
    im.save(buf, format=fmt, **kw, **save_options(fmt, metadata))
    return buf.getvalue()
