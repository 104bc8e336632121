"""The library surface: encode images to .clc bytes and decode them back.

    import clccodec
    data = clccodec.encode("photo.png", quality=3)       # bytes of a complete .clc file
    data = clccodec.encode("photo.png", effort=9, target_bpp=0.5)  # slower encode, smaller file
    image = clccodec.decode(data)                          # PIL.Image (also from "photo.clc", or a file object)
    clccodec.encode_file("photo.png", "photo.clc")         # atomic write
    info = clccodec.read_info("photo.clc")                 # header fields, bpp

Every argument that is an image or a file takes what Pillow's open() takes: a path (str or os.PathLike), the
bytes, or a binary file object; images also a PIL image or a uint8 array (H, W), (H, W, 3) or (H, W, 4). A bad
argument raises a clccodec.errors.UsageError (a ClcError) with a one-line message.

`Codec` keeps a torch model (and dictionary) loaded for many calls and encodes and decodes with it. The
module-level `encode` and `encode_file` live in encoding.backends and share one cached Encoder, `decode` and
`decode_file` in decoding.decoder and share one cached Decoder (the package exports them all); each picks the
fastest backend for each call: on a CPU the numpy one, without torch, wherever it can (encodes at efforts 0-2,
with a quality or a target; every complete file's decode but near-lossless ones, which need the exact
synthesis).

Decoding runs the exact probability path always (every file decodes on every device) and, by default, the fast
float32 synthesis: pixels within a last bit or two of the exact synthesis, which `exact=True` selects (the
same pixels on every machine, several times slower).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from .decoding.decoder import DecodeResult, Decoder, check_decode_args, decode, decode_file, decode_with, \
    get_decoder, to_pil
from .decoding.torch_backend import TorchBackend
from .defaults import DEFAULT_DETAIL, DEFAULT_EFFORT, DEFAULT_QUALITY, DEFAULT_REFS
from .encoding.options import EncodeResult, check_encode_args
from .encoding.effort import Progress
from .encoding.encoder import ImageEncoder
from .errors import ModelError
from .format import container
from .format.container import quantize_quality
from .format.ids import file_id
from .io.files import FileSource, read_info, read_source, write_atomic
from .io.images import ImageSource, LoadedImage, load_image, pad_to_multiple, to_tensor
from .model.config import PAD_MULTIPLE
from .model.network import CLCModel
from .model.quality import QUALITY_MAX, QUALITY_MIN
from .model.residual import apply_residual, pack_residual



class Codec:
    """A loaded model (+ optional reference dictionary) on a device."""

    def __init__(self, model: str | os.PathLike | CLCModel | None = None, dictionary: Any = None,
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

    def encode(self, image: ImageSource, quality: float | None = None, refs: int = DEFAULT_REFS, *,
               effort: int = DEFAULT_EFFORT, target_bpp: float | None = None, target_size: int | None = None,
               target_psnr: float | None = None, slices: int | None = None, strip: bool = False,
               alpha: bool = True, near_lossless: int | None = None, fallback: bool = True,
               progress: Progress | None = None) -> bytes:
        """The bytes of a .clc file (the arguments: encode_full's)."""
        return self.encode_full(image, quality, refs, effort=effort, target_bpp=target_bpp, target_size=target_size,
                                target_psnr=target_psnr, slices=slices, strip=strip, alpha=alpha,
                                near_lossless=near_lossless, fallback=fallback, progress=progress).data

    @torch.inference_mode()
    def encode_full(self, image: ImageSource, quality: float | None = None, refs: int = DEFAULT_REFS,
                    reconstruct: bool = False, exact: bool = False, *, effort: int = DEFAULT_EFFORT,
                    target_bpp: float | None = None, target_size: int | None = None,
                    target_psnr: float | None = None, slices: int | None = None, strip: bool = False,
                    alpha: bool = True, near_lossless: int | None = None, fallback: bool = True,
                    progress: Progress | None = None) -> EncodeResult:
        """The .clc bytes, the notes about the input, and with `reconstruct` the pixels a decoder will get (with
        the exact or the default fast synthesis: compare exact ones with `decode_pixels(..., exact=True)`).

        `quality` 0..8 (fractions allowed; below 1 extrapolated; None: DEFAULT_QUALITY, or
        DEFAULT_NEAR_LOSSLESS_QUALITY with `near_lossless`). `refs`: dictionary references (0: none).
        `effort` 0..9 (effort.py): 0 is the plain encoder; higher efforts choose the reference count by real
        cost (>= 1) and refine the latents for this image (>= 3), for smaller files read by the same decoder.
        `target_bpp` / `target_size` (bytes, a budget) / `target_psnr` (dB, a floor) replace `quality`: the
        quality is searched on real encodes (ratecontrol.py); a target out of reach gives the nearest file and a
        note saying what was reached. `slices`: write only the first K slice strings (a preview file; None: all).
        `strip`: leave out the source's ICC profile, EXIF and XMP (kept by default). `alpha`: keep the source's
        alpha plane, losslessly (default; False drops it). `near_lossless` N: add a residual layer that brings every
        sample within ±N of the source (0: lossless) on top of the lossy layer coded at `quality`
        (model/residual.py; NEAR_MAX at most; not with targets or `slices`). `fallback` False: write exactly `refs` references
        even where the file would be smaller without them (to measure what they do; by default every effort may
        drop them, see effort.py). `progress(done, total)` is called during refinement."""
        quality, targets = check_encode_args(quality, refs, effort, target_bpp=target_bpp, target_size=target_size,
                                             target_psnr=target_psnr, slices=slices, near_lossless=near_lossless,
                                             slice_count=len(self.model.cfg.slices))
        img = image if isinstance(image, LoadedImage) else load_image(image)
        if not alpha and img.alpha is not None:
            img = replace(img, alpha=None)
        x = pad_to_multiple(to_tensor(img.pixels, self.device), PAD_MULTIPLE)
        enc = ImageEncoder(self, img, x, int(refs), int(effort), slices, strip, progress, fallback=fallback)
        notes, missed = list(img.notes), ""
        if near_lossless is not None:  # the residual corrects the exact pixels: the same on every machine
            r = enc.encode(quantize_quality(float(quality)), reconstruct=True, exact=True)
            f = container.unpack(r.data)
            f.residual = pack_residual(img.pixels, r.pixels, img.grayscale, int(near_lossless))
            data = container.pack(f)
            pixels = apply_residual(r.pixels, f.residual, img.grayscale) if reconstruct else None
            return EncodeResult(data, pixels, notes, r.quality, r.refs)
        if not targets:
            r = enc.encode(quantize_quality(float(quality)), reconstruct=reconstruct, exact=exact)
        else:
            target = targets[0]
            found = enc.search(target)
            r = found.best.result
            if found.note:
                notes.append(found.note)
                missed = found.note
            if reconstruct and (r.pixels is None or exact):
                r = enc.encode(r.quality, reconstruct=True, exact=exact)
        return EncodeResult(r.data, r.pixels if reconstruct else None, notes, r.quality, r.refs, missed)

    # -- decoding ----------------------------------------------------------------------------------------------

    def decode_full(self, data: FileSource, *, exact: bool = False, partial: bool = False,
                    detail: str = DEFAULT_DETAIL, seed: int = 0, max_pixels: int | None = None) -> DecodeResult:
        """Decode a .clc file with this codec's torch model (decoding.decoder.Decoder.decode_full: the same
        arguments, results and errors)."""
        check_decode_args(detail, seed, max_pixels)
        f = container.unpack(read_source(data), partial=partial)
        return decode_with(self.backend, f, exact, detail, seed, max_pixels)

    def decode_pixels(self, data: FileSource, *, exact: bool = False, partial: bool = False,
                      detail: str = DEFAULT_DETAIL, seed: int = 0,
                      max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
        """Decode to uint8 (H, W, 3) RGB pixels and the grayscale flag (the arguments: decode_full's)."""
        r = self.decode_full(data, exact=exact, partial=partial, detail=detail, seed=seed, max_pixels=max_pixels)
        return r.pixels, r.grayscale

    def decode(self, data: FileSource, *, exact: bool = False, partial: bool = False, detail: str = DEFAULT_DETAIL,
               seed: int = 0, max_pixels: int | None = None) -> Image.Image:
        """A PIL image (RGB or L; RGBA or LA with alpha); its info carries the file's ICC profile / EXIF / XMP,
        which Pillow writes on save (the arguments: decode_full's)."""
        return to_pil(self.decode_full(data, exact=exact, partial=partial, detail=detail, seed=seed,
                                       max_pixels=max_pixels))


# -- module-level convenience ---------------------------------------------------------------------------------------

_CODECS: dict[tuple, Codec] = {}


def get_codec(model: str | os.PathLike | CLCModel | None = None, dictionary: str | os.PathLike | None | bool = None,
              device: str = "auto") -> Codec:
    """The Codec for (model, dictionary, device), loaded once per process."""
    key = (str(model), str(dictionary), str(device))
    if key not in _CODECS:
        _CODECS[key] = Codec(model, dictionary, device)
    return _CODECS[key]


__all__ = ["Codec", "Decoder", "decode", "decode_file", "get_codec", "get_decoder",
           "read_info",
           "write_atomic", "ModelError", "DEFAULT_QUALITY", "DEFAULT_REFS", "QUALITY_MIN", "QUALITY_MAX"]
