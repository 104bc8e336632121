"""The library surface: encode images to .clc bytes and decode them back.

    import clccodec
    data = clccodec.encode("photo.png", quality=3)       # bytes of a complete .clc file
    data = clccodec.encode("photo.png", effort=9, target_bpp=0.5)  # slower encode, smaller file
    image = clccodec.decode(data)                          # PIL.Image
    clccodec.encode_file("photo.png", "photo.clc")         # atomic write
    info = clccodec.read_info(data)                        # header fields, bpp

`Codec` keeps a model (and dictionary) loaded for many calls and decodes with it (the torch backend); the
module-level `encode` shares one cached Codec per (model, dictionary, device), `decode` one cached
decoding.decoder.Decoder, which picks the fastest backend for each call (the numpy one on a CPU: no torch).

Decoding runs the exact probability path always (every file decodes on every device) and, by default, the fast
float32 synthesis: pixels within a last bit or two of the exact synthesis, which `exact=True` selects (the
same pixels on every machine, several times slower).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .decoding.decoder import DecodeResult, Decoder, check_detail, decode_with, to_pil
from .decoding.torch_backend import TorchBackend
from .defaults import DEFAULT_DETAIL, DEFAULT_EFFORT, DEFAULT_QUALITY, DEFAULT_REFS
from .encoding.effort import EFFORT_MAX, EFFORT_MIN, Progress
from .encoding.encoder import ImageEncoder
from .encoding.ratecontrol import Target
from .errors import ModelError, UsageError
from .format import container
from .format.container import MAX_REFS, quantize_quality, read_info
from .format.ids import file_id
from .io.files import read_bytes, write_atomic
from .io.images import LoadedImage, encode_image, load_image, output_format, pad_to_multiple, to_tensor
from .model.config import PAD_MULTIPLE
from .model.network import CLCModel
from .model.quality import QUALITY_MAX, QUALITY_MIN, quality_is_valid



@dataclass
class EncodeResult:
    data: bytes
    reconstruction: np.ndarray | None  # the pixels a decoder gets (uint8 HxWx3), when asked for
    notes: list[str]  # about the input (alpha dropped, ...) and a target that was not met
    quality: float = DEFAULT_QUALITY  # the quality coded (the one found, with a target)
    refs: int = 0  # the references the file uses


class Codec:
    """A loaded model (+ optional reference dictionary) on a device."""

    def __init__(self, model: str | Path | CLCModel | None = None, dictionary: Any = None,
                 device: str | torch.device = "auto") -> None:
        """`dictionary`: None (the default dictionary, if it fits the model; loaded when first needed), False
        (none), a path or a ReferenceDictionary."""
        self.backend = TorchBackend.load(model, dictionary, device)
        self.model, self.device = self.backend.net, self.backend.device
        self.model_id = file_id(self.model.model_id)  # as .clc headers store it

    @property
    def dictionary(self):
        """The reference dictionary (None: none, or a default that does not fit the model)."""
        return self.backend.dictionary

    # -- encoding ----------------------------------------------------------------------------------------------

    def encode(self, image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS, **kw: Any) -> bytes:
        """Keywords of encode_full: slices=K, strip=True."""
        return self.encode_full(image, quality, refs, **kw).data

    @torch.inference_mode()
    def encode_full(self, image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS,
                    reconstruct: bool = False, exact: bool = False, *, slices: int | None = None,
                    strip: bool = False, effort: int = DEFAULT_EFFORT, target_bpp: float | None = None,
                    target_size: int | None = None, target_psnr: float | None = None,
                    progress: Progress | None = None, fallback: bool = True) -> EncodeResult:
        """The .clc bytes, the notes about the input, and with `reconstruct` the pixels a decoder will get (with
        the exact or the default fast synthesis: compare exact ones with `decode_pixels(..., exact=True)`).
        `slices`: write only the first K slice strings (a preview file; None: all). `strip`: leave out the
        source's ICC profile, EXIF and XMP (kept by default).

        `effort` 0..9 (effort.py): 0 is the plain encoder; higher efforts choose the reference count by real
        cost (>= 1) and refine the latents for this image (>= 3), for smaller files read by the same decoder.
        `progress(done, total)` is called during refinement. `target_bpp` / `target_size` (bytes, a budget) /
        `target_psnr` (dB, a floor) replace `quality`: the quality is searched on real encodes
        (ratecontrol.py); a target out of reach gives the nearest file and a note saying what was reached.
        `fallback` False: write exactly `refs` references even where the file would be smaller without them
        (to measure what they do; by default every effort may drop them, see effort.py)."""
        if not quality_is_valid(float(quality)):
            raise UsageError(f"quality must be between {QUALITY_MIN:g} and {QUALITY_MAX:g}, got {quality}")
        if refs < 0 or refs > MAX_REFS:
            raise UsageError(f"refs must be between 0 and {MAX_REFS}, got {refs}")
        if not EFFORT_MIN <= effort <= EFFORT_MAX or int(effort) != effort:
            raise UsageError(f"effort must be an integer between {EFFORT_MIN} and {EFFORT_MAX}, got {effort}")
        n_slices = len(self.model.cfg.slices)
        if slices is not None and not 0 <= slices <= n_slices:
            raise UsageError(f"slices must be between 0 and {n_slices} (the model codes {n_slices}), got {slices}")
        targets = [Target(k, float(v)) for k, v in (("bpp", target_bpp), ("size", target_size),
                                                    ("psnr", target_psnr)) if v is not None]
        if len(targets) > 1:
            raise UsageError("give at most one of target_bpp, target_size and target_psnr")
        img = image if isinstance(image, LoadedImage) else load_image(image)
        x = pad_to_multiple(to_tensor(img.pixels, self.device), PAD_MULTIPLE)
        enc = ImageEncoder(self, img, x, refs, effort, slices, strip, progress, fallback=fallback)
        notes = list(img.notes)
        if not targets:
            r = enc.encode(quantize_quality(float(quality)), reconstruct=reconstruct, exact=exact)
        else:
            target = targets[0]
            found = enc.search(target)
            r = found.best.result
            if found.note:
                notes.append(found.note)
            if reconstruct and (r.pixels is None or exact):
                r = enc.encode(r.quality, reconstruct=True, exact=exact)
        return EncodeResult(r.data, r.pixels if reconstruct else None, notes, r.quality, r.refs)

    # -- decoding ----------------------------------------------------------------------------------------------

    def decode_full(self, data: bytes, *, exact: bool = False, partial: bool = False, detail: str = DEFAULT_DETAIL,
                    seed: int = 0, max_pixels: int | None = None) -> DecodeResult:
        """Decode a .clc file with this codec's torch model (decoding.decoder.Decoder.decode_full: the same
        arguments, results and errors)."""
        check_detail(detail)
        return decode_with(self.backend, container.unpack(data, partial=partial), exact, detail, seed, max_pixels)

    def decode_pixels(self, data: bytes, **kw: Any) -> tuple[np.ndarray, bool]:
        """Decode to uint8 (H, W, 3) RGB pixels and the grayscale flag (keywords: those of decode_full)."""
        r = self.decode_full(data, **kw)
        return r.pixels, r.grayscale

    def decode(self, data: bytes, **kw: Any) -> Image.Image:
        """A PIL image; its info carries the file's ICC profile / EXIF / XMP, which Pillow writes on save."""
        return to_pil(self.decode_full(data, **kw))


# -- module-level convenience ---------------------------------------------------------------------------------------

_CODECS: dict[tuple, Codec] = {}
_DECODERS: dict[tuple, Decoder] = {}


def get_codec(model: str | Path | None = None, dictionary: str | Path | None | bool = None,
              device: str = "auto") -> Codec:
    key = (str(model), str(dictionary), str(device))
    if key not in _CODECS:
        _CODECS[key] = Codec(model, dictionary, device)
    return _CODECS[key]


def encode(image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS, *, model: str | Path | None = None,
           dictionary: str | Path | None = None, device: str = "auto", **kw: Any) -> bytes:
    """Encode an image (path, bytes, PIL image or uint8 array) to the bytes of a .clc file.

    Keywords of Codec.encode_full: effort=0..9 (slower, smaller files for the same decoder), target_bpp=X,
    target_size=BYTES or target_psnr=DB (instead of quality), slices=K (a preview file of the first K slices),
    strip=True (no ICC/EXIF/XMP), fallback=False (exactly `refs` references, even where the file would be
    smaller without them)."""
    return get_codec(model, dictionary, device).encode(image, quality, refs, **kw)


def decode(data: bytes, *, model: str | Path | None = None, dictionary: str | Path | None = None,
           device: str = "auto", **kw: Any) -> Image.Image:
    """Decode the bytes of a .clc file to a PIL image (RGB, or L for grayscale sources).

    Keywords of Codec.decode_full: exact=True (the bit-exact synthesis: identical pixels on every device, slower
    than the default), partial=True, detail="mean" | "sample", seed=N, max_pixels=N (refuse larger images
    before any work; default: $CLC_MAX_PIXELS, else defaults.DEFAULT_MAX_PIXELS)."""
    key = (str(model), str(dictionary), str(device))
    if key not in _DECODERS:
        _DECODERS[key] = Decoder(model, dictionary, device)
    return _DECODERS[key].decode(data, **kw)


def encode_file(src: str | Path, dst: str | Path, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS, *,
                force: bool = False, **kw: Any) -> int:
    """Encode an image file to a .clc file; returns the number of bytes written."""
    data = encode(src, quality, refs, **kw)
    write_atomic(dst, data, force)
    return len(data)


def decode_file(src: str | Path, dst: str | Path, *, force: bool = False, exact: bool = False, **kw: Any) -> None:
    fmt = output_format(dst)
    im = decode(read_bytes(src), exact=exact, **kw)
    meta = {"icc" if k == "icc_profile" else k: v for k, v in im.info.items() if k in ("icc_profile", "exif", "xmp")}
    write_atomic(dst, encode_image(im, fmt, meta), force)


__all__ = ["Codec", "encode", "decode", "encode_file", "decode_file", "read_info", "write_atomic",
           "ModelError", "DEFAULT_QUALITY", "DEFAULT_REFS", "QUALITY_MIN", "QUALITY_MAX"]
