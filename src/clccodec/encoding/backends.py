"""clccodec.Encoder: encodes with the backend that serves each call fastest, like decoding.decoder.Decoder.

On a CPU, the encodes the torch-free encoder does whole (numpy_encoder.py: efforts 0-2, with a quality or a
target, every slice, no near-lossless layer, a dictionary without pictures, no reconstruction asked for) run
without importing torch; everything else goes to the torch Codec (api.py), loaded on first need. The CLI encodes
through this class. Importing this module imports neither torch nor the numpy encoder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ..defaults import DEFAULT_EFFORT, DEFAULT_REFS, default_model_path
from .effort import NUMPY_EFFORT_MAX, Progress
from .options import EncodeResult, check_encode_args

if TYPE_CHECKING:
    from ..io.images import ImageSource


class Encoder:
    """Encodes images with the numpy encoder where it serves the call (a CPU device, numpy_encoder's cases) and
    with the torch Codec otherwise. The backend most calls will use is built at once (a bad model or dictionary
    fails here); the torch one on first need."""

    def __init__(self, model: Any = None, dictionary: Any = None, device: str = "auto", *,
                 torch_calls: bool = False) -> None:
        """`model`: a weights file (None: the shipped one) or a loaded CLCModel (then every call is torch's);
        `dictionary`: None (the default dictionary, if it fits the model), False (none) or a path.
        `torch_calls`: most calls will need torch (efforts above effort.NUMPY_EFFORT_MAX, near-lossless,
        previews): load it now, and the numpy encoder only if a call can use it."""
        from ..decoding.decoder import choose_backend

        self.model_arg = model
        self.model_path = Path(model or default_model_path()) if isinstance(model, (str, os.PathLike, type(None))) \
            else None
        self.dictionary_arg, self.device = dictionary, device
        self._codec: Any = None
        self._numpy: Any = None
        self._numpy_possible = self.model_path is not None and choose_backend(device) == "numpy"
        _ = self.numpy_encoder if self._numpy_possible and not torch_calls else self.codec  # a bad model fails here

    @property
    def codec(self):
        """The torch Codec (api.Codec) of the same model, dictionary and device."""
        if self._codec is None:
            from ..api import Codec

            self._codec = Codec(self.model_arg if self.model_path is None else self.model_path, self.dictionary_arg,
                                self.device)
        return self._codec

    @property
    def numpy_encoder(self):
        """The torch-free encoder (numpy_encoder.NumpyEncoder), or None where it cannot serve (a GPU, a loaded
        torch model)."""
        if self._numpy is None and self._numpy_possible:
            from .numpy_encoder import NumpyEncoder

            self._numpy = NumpyEncoder(self.model_path, self.dictionary_arg)
        return self._numpy

    def encode(self, image: ImageSource, quality: float | None = None, refs: int = DEFAULT_REFS, **kw: Any) -> bytes:
        """The bytes of a .clc file (the arguments: encode_full's)."""
        return self.encode_full(image, quality, refs, **kw).data

    def encode_full(self, image: ImageSource, quality: float | None = None, refs: int = DEFAULT_REFS,
                    reconstruct: bool = False, exact: bool = False, *, effort: int = DEFAULT_EFFORT,
                    target_bpp: float | None = None, target_size: int | None = None,
                    target_psnr: float | None = None, slices: int | None = None,
                    strip: bool = False, alpha: bool = True, near_lossless: int | None = None,
                    fallback: bool = True, progress: Progress | None = None) -> EncodeResult:
        """api.Codec.encode_full: the same arguments, results and errors (a numpy-encoded file has the bytes of
        the torch encoder's up to the analysis's float rounding, and decodes to the same pixels)."""
        kw = dict(effort=effort, target_bpp=target_bpp, target_size=target_size, target_psnr=target_psnr,
                  slices=slices, strip=strip, alpha=alpha, near_lossless=near_lossless, fallback=fallback,
                  progress=progress)
        check_encode_args(quality, refs, effort, target_bpp=target_bpp, target_size=target_size,
                          target_psnr=target_psnr, slices=slices, near_lossless=near_lossless)  # before any loading
        if self._numpy_possible and not reconstruct and near_lossless is None and effort <= NUMPY_EFFORT_MAX:
            from ..io.images import LoadedImage, load_image

            enc = self.numpy_encoder
            assert enc is not None
            q, targets = check_encode_args(quality, refs, effort, target_bpp=target_bpp, target_size=target_size,
                                           target_psnr=target_psnr, slices=slices, near_lossless=near_lossless,
                                           slice_count=len(enc.model.cfg.slices))
            if enc.supported(refs=int(refs), effort=int(effort), slices=slices, near_lossless=near_lossless):
                img = image if isinstance(image, LoadedImage) else load_image(image)
                r, notes = enc.encode(img, q, int(refs), effort=int(effort), target=targets[0] if targets else None,
                                      strip=strip, alpha=alpha, fallback=fallback)
                return EncodeResult(r.data, None, notes, r.quality, r.refs, r.note or "")
        return self.codec.encode_full(image, quality, refs, reconstruct, exact, **kw)


# -- module-level convenience (clccodec.encode, clccodec.encode_file) -------------------------------------------------

_ENCODERS: dict[tuple, Encoder] = {}


def get_encoder(model: str | os.PathLike | None = None, dictionary: str | os.PathLike | bool | None = None,
                device: str = "auto") -> Encoder:
    """The Encoder for (model, dictionary, device), loaded once per process."""
    key = (str(model), str(dictionary), str(device))
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(model, dictionary, device)
    return _ENCODERS[key]


def encode(image: ImageSource, quality: float | None = None, refs: int = DEFAULT_REFS, *, effort: int = DEFAULT_EFFORT,
           target_bpp: float | None = None, target_size: int | None = None, target_psnr: float | None = None,
           slices: int | None = None, strip: bool = False, alpha: bool = True, near_lossless: int | None = None,
           fallback: bool = True, progress: Progress | None = None, model: Any = None,
           dictionary: str | os.PathLike | bool | None = None, device: str = "auto") -> bytes:
    """Encode an image (a path, bytes, a binary file object, a PIL image or a uint8 array) to the bytes of a
    .clc file. The arguments: api.Codec.encode_full's; `model` (a weights file, or a loaded CLCModel),
    `dictionary` (None: the default, False: none), `device`: which encoder (loaded once per process: without
    torch on a CPU where it can, Encoder)."""
    kw = dict(effort=effort, target_bpp=target_bpp, target_size=target_size, target_psnr=target_psnr,
              slices=slices, strip=strip, alpha=alpha, near_lossless=near_lossless, fallback=fallback,
              progress=progress)
    if model is not None and not isinstance(model, (str, os.PathLike)):  # a loaded torch model
        from ..api import get_codec

        return get_codec(model, dictionary, device).encode(image, quality, refs, **kw)
    return get_encoder(model, dictionary, device).encode_full(image, quality, refs, **kw).data


def encode_file(src: ImageSource, dst: str | os.PathLike, quality: float | None = None, refs: int = DEFAULT_REFS, *,
                force: bool = False, effort: int = DEFAULT_EFFORT, target_bpp: float | None = None,
                target_size: int | None = None, target_psnr: float | None = None, slices: int | None = None,
                strip: bool = False, alpha: bool = True, near_lossless: int | None = None, fallback: bool = True,
                progress: Progress | None = None, model: Any = None,
                dictionary: str | os.PathLike | bool | None = None, device: str = "auto") -> int:
    """Encode an image to a .clc file, written atomically (`force`: replace an existing one); returns the number
    of bytes written. The other arguments: encode's."""
    from ..io.files import check_output, write_atomic

    check_output(dst, force)
    data = encode(src, quality, refs, effort=effort, target_bpp=target_bpp, target_size=target_size,
                  target_psnr=target_psnr, slices=slices, strip=strip, alpha=alpha, near_lossless=near_lossless,
                  fallback=fallback, progress=progress, model=model, dictionary=dictionary, device=device)
    write_atomic(dst, data, force)
    return len(data)
