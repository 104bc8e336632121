"""One decoder, two backends.

Every decode runs the same steps (`decode_with`): parse and check the file (container), check it against the
loaded model and dictionary (`check_file`), fetch the references it names, let a backend turn the entropy-coded
strings into pixels, paste the block-copy section, return a DecodeResult. The backends differ only in that
middle step:

* numpy (numpy_backend.py): no torch at all; the exact probability path and the fast float32 synthesis, for
  complete files. The fastest on a CPU (a one-shot decode does not pay the seconds of `import torch`).
* torch (torch_backend.py; api.Codec decodes with it): every file on every device, the exact synthesis, missing slices
  (progressive.py).

Both decode the same symbols bit for bit; which one serves a call is decided by `choose_backend`, the one place
of that policy (the CLI, `clccodec.decode` and `Decoder` all use it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

from ..defaults import DEFAULT_DETAIL, DETAIL_MODES, default_model_path, max_pixels
from ..errors import DictionaryError, DictionaryMismatchError, FormatError, ModelMismatchError, PixelLimitError, \
    UsageError, check_number
from ..format import container
from ..format.container import ClcFile
from ..format.alpha import unpack_alpha
from ..format.ids import file_id
from ..io.files import FileSource, read_source
from ..model.config import PAD_MULTIPLE
from ..model.quality import quality_is_valid
from ..model.rans import too_short
from ..model.residual import apply_residual
from ..model.releases import describe_model_mismatch


@dataclass
class DecodeResult:
    pixels: np.ndarray  # uint8 (H, W, 3)
    grayscale: bool
    metadata: dict[str, bytes]  # ICC / EXIF / XMP sections of the file (format/metadata.py)
    slices_used: int  # slice strings decoded; the rest (slices_total - slices_used) were filled (progressive.py)
    slices_total: int
    truncated: bool  # the file ended early (only with partial=True)
    alpha: np.ndarray | None = None  # uint8 (H, W): the file's alpha plane (format/alpha.py), None if opaque


class Backend(Protocol):
    """What a backend gives the decoder: its model's full id and slices, its dictionary, the references a file
    names, and the pixels of a checked file; and for the string check (`check_strings`), the fewest bits a
    hyper-latent symbol of each channel and any latent symbol can cost (model.rans.min_bits)."""

    model_id: bytes
    slice_count: int
    slice_sizes: tuple[int, ...]
    hyper_min_bits: np.ndarray
    latent_min_bits: float

    @property
    def dictionary(self) -> Any: ...

    def references(self, indices: list[int]) -> Any: ...

    def pixels(self, f: ClcFile, refs: Any, exact: bool, detail: str, seed: int) -> np.ndarray: ...


def check_decode_args(detail: str, seed: int = 0, max_pixels: int | None = None) -> None:
    """The decoding options every decode entry takes, checked before any work (one message each)."""
    if detail not in DETAIL_MODES:
        raise UsageError(f"detail must be one of {', '.join(map(repr, DETAIL_MODES))}, got {detail!r}")
    check_number("seed", seed, 0, integer=True)
    check_number("max_pixels", max_pixels, 1, integer=True, optional=True)


def check_file(f: ClcFile, model_id: bytes, slices: int, dictionary: Callable[[], Any],
               limit: int | None = None) -> None:
    """What the container cannot check alone: this file against the decoder's pixel limit (`limit`, None: the
    default, defaults.max_pixels), the loaded model (its full id and slice count) and dictionary (`dictionary()`
    -> the loaded one, with a .file_id, or None; asked only for files with references)."""
    from ..io.images import MAX_PIXELS

    pixels = f.width * f.height
    if pixels > MAX_PIXELS:  # the encoder never writes one: refuse before allocating anything
        raise FormatError(f"corrupt file: {f.width}x{f.height} is too large (this build codes at most "
                          f"{MAX_PIXELS:,} pixels)")
    limit = max_pixels(limit)
    if pixels > limit:
        raise PixelLimitError(f"{f.width}x{f.height} ({pixels:,} pixels) is over the decoder's limit of "
                              f"{limit:,} pixels (raise it with --max-pixels, $CLC_MAX_PIXELS or max_pixels=)")
    if f.model_id != file_id(model_id):
        raise ModelMismatchError(describe_model_mismatch(f.model_id, model_id, f.num_refs > 0))
    if f.slices_total != slices:
        raise FormatError(f"corrupt file: {f.slices_total} slices, the model codes {slices}")
    if not quality_is_valid(f.quality):
        raise FormatError(f"corrupt file: quality {f.quality} out of range")
    if f.num_refs:
        d = dictionary()
        if d is None:
            raise DictionaryError(f"this file needs reference dictionary {f.dictionary_id.hex()}; "
                                  "none is loaded (pass --dict)")
        if f.dictionary_id != d.file_id:
            raise DictionaryMismatchError(
                f"this file needs reference dictionary {f.dictionary_id.hex()}, but the loaded dictionary "
                f"is {d.file_id.hex()} (pass the right --dict)")


def check_strings(f: ClcFile, backend: Backend) -> None:
    """Refuse entropy-coded strings too short for the symbols the header's size implies (model.rans.too_short):
    a small file claiming a large image is corrupt, found in microseconds instead of after minutes of decoding
    padding. The hyper-latent's bound is per channel (its tables are known before decoding); a slice's uses the
    cheapest symbol of any table (its tables depend on what is decoded before it)."""
    zh, zw = -(-f.height // PAD_MULTIPLE), -(-f.width // PAD_MULTIPLE)
    if too_short(f.hyper, float(backend.hyper_min_bits.sum()) * zh * zw):
        raise FormatError(f"corrupt file: the hyper-latent's entropy-coded data ({len(f.hyper)} bytes) is too short "
                          f"for a {f.width}x{f.height} image")
    latent_positions = (4 * zh) * (4 * zw)  # the latent has 4x the hyper-latent's rows and columns
    for i, (string, channels) in enumerate(zip(f.slices, backend.slice_sizes)):
        if too_short(string, backend.latent_min_bits * channels * latent_positions):
            raise FormatError(f"corrupt file: slice {i + 1}'s entropy-coded data ({len(string)} bytes) is too "
                              f"short for a {f.width}x{f.height} image")


def decode_with(backend: Backend, f: ClcFile, exact: bool = False, detail: str = DEFAULT_DETAIL,
                seed: int = 0, max_pixels: int | None = None) -> DecodeResult:
    """The decode of a parsed file, every step but the backend's own. `max_pixels`: the pixel limit (None: the
    default, defaults.max_pixels). A file with a residual decodes its lossy layer with the exact synthesis (the
    residual corrects those pixels, the same on every machine), whatever `exact` says."""
    check_file(f, backend.model_id, backend.slice_count, lambda: backend.dictionary, max_pixels)
    check_strings(f, backend)
    alpha = unpack_alpha(f.alpha, f.width, f.height) if f.alpha else None  # (cheap: a corrupt one fails first)
    refs = backend.references(f.ref_indices) if f.num_refs else None  # checks the indices
    try:
        pixels = backend.pixels(f, refs, exact or bool(f.residual), detail, seed)
    except (RuntimeError, ValueError) as e:  # the entropy decoder rejecting its input
        raise FormatError(f"corrupt file: entropy-coded data does not decode ({e.__class__.__name__})") from None
    if f.block_copy:  # a file with a copy section has references: check_file made sure of the dictionary
        pixels = backend.dictionary.pictures.apply(pixels, f.block_copy, f.width, f.height)
    if f.residual:
        pixels = apply_residual(pixels, f.residual, f.grayscale)
    return DecodeResult(pixels, f.grayscale, f.metadata, f.slices_present, f.slices_total, f.truncated, alpha)


def to_pil(r: DecodeResult):
    """A PIL image; its info carries the file's ICC profile / EXIF / XMP, which Pillow writes on save."""
    from ..io.images import to_image

    im = to_image(r.pixels, r.grayscale, r.alpha)
    im.info.update({"icc_profile" if k == "icc" else k: v for k, v in r.metadata.items()})
    return im


# -- the backend policy -----------------------------------------------------------------------------------------------

def gpu_may_be_present() -> bool:
    """Whether `device="auto"` could find a CUDA GPU, judged without importing torch: the NVIDIA driver's device
    node (ROCm's, WSL's) and a CUDA_VISIBLE_DEVICES that does not hide every GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg"))


def choose_backend(device: str, exact: bool = False, complete: bool = True) -> str:
    """'numpy' or 'torch': numpy wherever it can serve the call (the CPU, the fast synthesis, every slice
    present), torch for the rest (a GPU, `exact`, missing slices)."""
    on_cpu = device == "cpu" or (device == "auto" and not gpu_may_be_present())
    return "numpy" if on_cpu and not exact and complete else "torch"


class Decoder:
    """Decodes .clc files with the backend `choose_backend` picks for each call. The backend most calls will use
    (`exact`: those calls will ask for the exact synthesis) is built at once, so that a bad model or dictionary
    fails here; the other one on first need."""

    def __init__(self, model: str | Path | None = None, dictionary: str | Path | bool | None = None,
                 device: str = "auto", exact: bool = False) -> None:
        """`dictionary`: None (the default dictionary, if it fits the model), False (none) or a path."""
        self.model_path = Path(model or default_model_path())
        self.device = device
        self._dictionary_arg = dictionary
        self._backends: dict[str, Any] = {}
        self.backend(choose_backend(device, exact))

    def backend(self, kind: str) -> Any:
        if kind not in self._backends:
            if kind == "numpy":
                from .numpy_backend import NumpyBackend

                self._backends[kind] = NumpyBackend(self.model_path, self._dictionary_arg)
            else:
                from .torch_backend import TorchBackend

                self._backends[kind] = TorchBackend.load(self.model_path, self._dictionary_arg, self.device)
        return self._backends[kind]

    @property
    def model_id(self) -> bytes:
        """The loaded model's id as .clc headers store it."""
        return file_id(next(iter(self._backends.values())).model_id)

    def decode_full(self, data: FileSource, *, exact: bool = False, partial: bool = False,
                    detail: str = DEFAULT_DETAIL, seed: int = 0, max_pixels: int | None = None) -> DecodeResult:
        """Decode a .clc file (a path, its bytes or a binary file object). `exact`: the bit-exact synthesis
        (default: the fast one). `partial`: a truncated version-2 file decodes from its complete sections (else a
        TruncatedError). Slices a file does not hold (truncated, or a `slices=K` preview) are filled by
        progressive.py: `detail="mean"` (exact decoder-side prediction) or `"sample"` (seeded draw). `max_pixels`:
        refuse larger images before any work (a PixelLimitError; None: $CLC_MAX_PIXELS or
        defaults.DEFAULT_MAX_PIXELS)."""
        check_decode_args(detail, seed, max_pixels)
        f = container.unpack(read_source(data), partial=partial)
        kind = choose_backend(self.device, exact or bool(f.residual), f.slices_present == f.slices_total)
        return decode_with(self.backend(kind), f, exact, detail, seed, max_pixels)

    def decode_pixels(self, data: FileSource, *, exact: bool = False, partial: bool = False,
                      detail: str = DEFAULT_DETAIL, seed: int = 0,
                      max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
        """uint8 (H, W, 3) RGB pixels and the grayscale flag (the arguments: decode_full's)."""
        r = self.decode_full(data, exact=exact, partial=partial, detail=detail, seed=seed, max_pixels=max_pixels)
        return r.pixels, r.grayscale

    def decode(self, data: FileSource, *, exact: bool = False, partial: bool = False, detail: str = DEFAULT_DETAIL,
               seed: int = 0, max_pixels: int | None = None):
        """A PIL image: RGB or L, RGBA or LA with alpha (the arguments: decode_full's)."""
        return to_pil(self.decode_full(data, exact=exact, partial=partial, detail=detail, seed=seed,
                                       max_pixels=max_pixels))


class LiteDecoder(Decoder):
    """The decoder on the CPU: the numpy backend, torch only for what it does not do (kept for the name earlier
    releases exported)."""

    def __init__(self, model: str | Path | None = None, dictionary: str | Path | bool | None = None) -> None:
        super().__init__(model, dictionary, "cpu")

    @property
    def model(self):
        return self.backend("numpy").model


# -- module-level convenience (clccodec.decode, clccodec.decode_file: no torch on a CPU) --------------------------

_DECODERS: dict[tuple, Decoder] = {}


def get_decoder(model: str | os.PathLike | None = None, dictionary: str | os.PathLike | None | bool = None,
                device: str = "auto") -> Decoder:
    """The Decoder for (model, dictionary, device), loaded once per process."""
    key = (str(model), str(dictionary), str(device))
    if key not in _DECODERS:
        _DECODERS[key] = Decoder(model, dictionary, device)
    return _DECODERS[key]


def decode(data: FileSource, *, exact: bool = False, partial: bool = False, detail: str = DEFAULT_DETAIL,
           seed: int = 0, max_pixels: int | None = None, model: str | os.PathLike | None = None,
           dictionary: str | os.PathLike | None | bool = None, device: str = "auto") -> Image.Image:
    """Decode a .clc file (a path, its bytes or a binary file object) to a PIL image (RGB, or L for grayscale
    sources; RGBA / LA with alpha).

    `exact`: the bit-exact synthesis (identical pixels on every device, slower than the default). `partial`: a
    truncated file decodes from its complete slices. `detail` "mean" | "sample" and `seed`: what fills the slices
    a file lacks. `max_pixels`: refuse larger images before any work (default: $CLC_MAX_PIXELS, else
    defaults.DEFAULT_MAX_PIXELS). On a CPU this imports no torch (the numpy decoder), except for a near-lossless
    file (it decodes with the exact synthesis)."""
    return get_decoder(model, dictionary, device).decode(data, exact=exact, partial=partial, detail=detail,
                                                         seed=seed, max_pixels=max_pixels)


def decode_file(src: FileSource, dst: str | os.PathLike, *, force: bool = False, exact: bool = False,
                partial: bool = False, detail: str = DEFAULT_DETAIL, seed: int = 0, max_pixels: int | None = None,
                model: str | os.PathLike | None = None, dictionary: str | os.PathLike | None | bool = None,
                device: str = "auto") -> None:
    """Decode a .clc file to an image file (format from dst's extension: png, jpg, webp, tif, bmp, ppm), written
    atomically with the source's ICC/EXIF/XMP; alpha where the format holds it. The other arguments: decode's."""
    from ..io.files import check_output, write_atomic
    from ..io.images import encode_image, output_format

    fmt = output_format(dst)
    check_output(dst, force)
    im = decode(src, exact=exact, partial=partial, detail=detail, seed=seed, max_pixels=max_pixels, model=model,
                dictionary=dictionary, device=device)
    meta = {"icc" if k == "icc_profile" else k: v for k, v in im.info.items() if k in ("icc_profile", "exif", "xmp")}
    write_atomic(dst, encode_image(im, fmt, meta), force)
