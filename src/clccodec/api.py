"""The library surface: encode images to .clc bytes and decode them back.

    import clccodec
    data = clccodec.encode("photo.png", quality=3)       # bytes of a complete .clc file
    image = clccodec.decode(data)                          # PIL.Image
    clccodec.encode_file("photo.png", "photo.clc")         # atomic write
    info = clccodec.read_info(data)                        # header fields, bpp

`Codec` keeps a model (and dictionary) loaded for many calls; the module-level functions share one cached
Codec per (model, dictionary, device).

Decoding runs the exact probability path always (every file decodes on every device) and, by default, the fast
float32 synthesis: pixels within a last bit or two of the exact synthesis, which `exact=True` selects (the
same pixels on every machine, several times slower).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import container
from .fileio import read_bytes, write_atomic
from .container import DEFAULT_REFS, MAX_REFS, ClcFile, read_info
from .device import no_tf32, resolve_device
from .errors import DictionaryError, DictionaryMismatchError, FormatError, ModelError, ModelMismatchError, UsageError
from .ids import NO_DICTIONARY, file_id
from .imageio import MAX_PIXELS, LoadedImage, encode_image, load_image, output_format, pad_to_multiple, to_image, to_pixels, \
    to_tensor
from .model.codec import PAD_MULTIPLE, CLCModel
from .model.weights import load_weights, model_id
from .quality import DEFAULT_QUALITY, QUALITY_MAX, QUALITY_MIN, quality_is_valid, quantize_quality
from .release import DEFAULT_DICTIONARY, DEFAULT_MODEL, describe_model_mismatch


def default_model_path() -> Path:
    return Path(os.environ.get("CLC_MODEL", DEFAULT_MODEL))


def default_dictionary_path() -> Path | None:
    p = Path(os.environ.get("CLC_DICTIONARY", DEFAULT_DICTIONARY))
    return p if p.exists() else None


@dataclass
class EncodeResult:
    data: bytes
    reconstruction: np.ndarray | None  # the pixels a decoder gets (uint8 HxWx3), when asked for
    notes: list[str]


class Codec:
    """A loaded model (+ optional reference dictionary) on a device."""

    def __init__(self, model: str | Path | CLCModel | None = None, dictionary: Any = None,
                 device: str | torch.device = "auto") -> None:
        self.device = resolve_device(device)
        if isinstance(model, CLCModel):
            self.model = model.to(self.device).eval()
            if not hasattr(self.model, "model_id"):
                self.model.model_id = model_id(self.model)
        else:
            self.model = load_weights(model or default_model_path(), self.device)
        self.model_id = file_id(self.model.model_id)  # as .clc headers store it
        # the default dictionary loads when first needed (an M = 0 file never needs it); a given one right away
        self._dictionary, self._default_dictionary = None, dictionary is None
        if dictionary is not None:
            self._dictionary = self._load_dictionary(dictionary)

    @property
    def dictionary(self):
        """The reference dictionary (None: none, or a default that does not fit the model)."""
        if self._default_dictionary:
            self._default_dictionary = False
            self._dictionary = self._load_default_dictionary()
        return self._dictionary

    def _load_default_dictionary(self):
        path = default_dictionary_path()
        if path is None:
            return None
        from .dictionary.store import ReferenceDictionary

        d = ReferenceDictionary.load(path)
        return d if file_id(d.model_id) == self.model_id else None

    def _load_dictionary(self, dictionary: Any):
        """False: none; a path or a ReferenceDictionary, which must fit the model."""
        if dictionary is False:
            return None
        if isinstance(dictionary, (str, Path)):
            from .dictionary.store import ReferenceDictionary

            dictionary = ReferenceDictionary.load(dictionary)
        if file_id(dictionary.model_id) != self.model_id:
            raise DictionaryMismatchError(
                f"dictionary {dictionary.id.hex()} was built for model {dictionary.model_id.hex()}, "
                f"not for the loaded model {self.model.model_id.hex()}")
        return dictionary

    # -- encoding ----------------------------------------------------------------------------------------------

    def encode(self, image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS) -> bytes:
        return self.encode_full(image, quality, refs).data

    @torch.inference_mode()
    def encode_full(self, image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS,
                    reconstruct: bool = False, exact: bool = False) -> EncodeResult:
        """The .clc bytes, the notes about the input, and with `reconstruct` the pixels a decoder will get (with
        the exact or the default fast synthesis: compare exact ones with `decode_pixels(..., exact=True)`)."""
        if not quality_is_valid(float(quality)):
            raise UsageError(f"quality must be between {QUALITY_MIN:g} and {QUALITY_MAX:g}, got {quality}")
        if refs < 0 or refs > MAX_REFS:
            raise UsageError(f"refs must be between 0 and {MAX_REFS}, got {refs}")
        img = image if isinstance(image, LoadedImage) else load_image(image)
        q = quantize_quality(float(quality))
        x = pad_to_multiple(to_tensor(img.pixels, self.device), PAD_MULTIPLE)
        indices: list[int] = []
        codes = y = None
        if refs and self.dictionary is not None:
            y = self.model.analyse(x)  # the encoder's own latent is also the retrieval query's feature map
            indices = self.dictionary.retrieve(self.model, x, refs, latent=y)
            codes = self.dictionary.values(indices, self.device)
        with no_tf32():
            streams, x_hat = self.model.compress(x, q, codes, reconstruct, exact, y)
        f = ClcFile(img.width, img.height, self.model_id, q, img.grayscale,
                    self.dictionary.file_id if indices else NO_DICTIONARY, indices, 0, [streams])
        recon = to_pixels(x_hat[..., : img.height, : img.width]) if x_hat is not None else None
        return EncodeResult(container.pack(f), recon, img.notes)

    # -- decoding ----------------------------------------------------------------------------------------------

    def _check(self, f: ClcFile) -> None:
        """What the container cannot check alone: this file against this model and dictionary."""
        if f.width * f.height > MAX_PIXELS:  # the encoder never writes one: refuse before allocating anything
            raise FormatError(f"corrupt file: {f.width}x{f.height} is too large (this build codes at most "
                              f"{MAX_PIXELS:,} pixels)")
        if f.model_id != self.model_id:
            raise ModelMismatchError(describe_model_mismatch(f.model_id, self.model.model_id, f.num_refs > 0))
        if len(f.tiles[0].slices) != len(self.model.cfg.slices):
            raise FormatError(f"corrupt file: {len(f.tiles[0].slices)} slices, the model codes "
                              f"{len(self.model.cfg.slices)}")
        if not quality_is_valid(f.quality):
            raise FormatError(f"corrupt file: quality {f.quality} out of range")
        if f.num_refs:
            if self.dictionary is None:
                raise DictionaryError(f"this file needs reference dictionary {f.dictionary_id.hex()}; "
                                      "none is loaded (pass --dict)")
            if f.dictionary_id != self.dictionary.file_id:
                raise DictionaryMismatchError(
                    f"this file needs reference dictionary {f.dictionary_id.hex()}, but the loaded dictionary "
                    f"is {self.dictionary.file_id.hex()} (pass the right --dict)")

    @torch.inference_mode()
    def decode_pixels(self, data: bytes, exact: bool = False) -> tuple[np.ndarray, bool]:
        """Decode to uint8 (H, W, 3) RGB pixels and the grayscale flag (`exact`: the bit-exact synthesis)."""
        f = container.unpack(data)
        self._check(f)
        codes = self.dictionary.values(f.ref_indices, self.device) if f.num_refs else None  # checks the indices
        try:
            with no_tf32():
                x_hat = self.model.decompress(f.tiles[0], (f.height, f.width), f.quality, codes, self.device,
                                              exact)
        except (RuntimeError, ValueError) as e:  # the entropy decoder rejecting its input
            raise FormatError(f"corrupt file: entropy-coded data does not decode ({e.__class__.__name__})") from None
        return to_pixels(x_hat[..., : f.height, : f.width]), f.grayscale

    def decode(self, data: bytes, exact: bool = False) -> Image.Image:
        pixels, gray = self.decode_pixels(data, exact)
        return to_image(pixels, gray)


# -- module-level convenience ---------------------------------------------------------------------------------------

_CODECS: dict[tuple, Codec] = {}


def get_codec(model: str | Path | None = None, dictionary: str | Path | None | bool = None,
              device: str = "auto") -> Codec:
    key = (str(model), str(dictionary), str(device))
    if key not in _CODECS:
        _CODECS[key] = Codec(model, dictionary, device)
    return _CODECS[key]


def encode(image: Any, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS, *, model: str | Path | None = None,
           dictionary: str | Path | None = None, device: str = "auto") -> bytes:
    """Encode an image (path, bytes, PIL image or uint8 array) to the bytes of a .clc file."""
    return get_codec(model, dictionary, device).encode(image, quality, refs)


def decode(data: bytes, *, exact: bool = False, model: str | Path | None = None,
           dictionary: str | Path | None = None, device: str = "auto") -> Image.Image:
    """Decode the bytes of a .clc file to a PIL image (RGB, or L for grayscale sources).

    exact=True: the bit-exact synthesis (identical pixels on every device; slower than the default)."""
    return get_codec(model, dictionary, device).decode(data, exact)


def encode_file(src: str | Path, dst: str | Path, quality: float = DEFAULT_QUALITY, refs: int = DEFAULT_REFS, *,
                force: bool = False, **kw: Any) -> int:
    """Encode an image file to a .clc file; returns the number of bytes written."""
    data = encode(src, quality, refs, **kw)
    write_atomic(dst, data, force)
    return len(data)


def decode_file(src: str | Path, dst: str | Path, *, force: bool = False, exact: bool = False, **kw: Any) -> None:
    fmt = output_format(dst)
    write_atomic(dst, encode_image(decode(read_bytes(src), exact=exact, **kw), fmt), force)


__all__ = ["Codec", "encode", "decode", "encode_file", "decode_file", "read_info", "write_atomic",
           "ModelError", "DEFAULT_QUALITY", "DEFAULT_REFS", "QUALITY_MIN", "QUALITY_MAX"]
