"""clccodec: Conditional Latent Coding, a learned image codec with dictionary references.

    import clccodec
    data = clccodec.encode("photo.png", quality=3)
    image = clccodec.decode(data)                          # or decode("photo.clc"), decode(open(..., "rb"))
    pixels = clccodec.Decoder().decode_full(data).pixels   # uint8 HxWx3; on a CPU without importing torch

Importing the package is cheap and changes nothing in the process: torch and the model load only when a codec
is first used (`read_info` and the errors never need them). On a CPU, `encode` and `decode` run without torch
wherever they can (the default encode and every complete file's decode); `Codec` always holds the torch model.
"""

from __future__ import annotations

from .errors import ClcError
from .io.files import read_info

__version__ = "0.13.0"

_FROM_API = ("Codec",)
_FROM_ENCODER = ("Encoder", "encode", "encode_file")  # no torch on a CPU, for the encodes it can do
_FROM_DECODER = ("Decoder", "LiteDecoder", "decode", "decode_file")  # no torch on a CPU
__all__ = ["Codec", "ClcError", "Decoder", "Encoder", "LiteDecoder", "decode", "decode_file", "encode", "encode_file",
           "read_info", "__version__"]


def __getattr__(name: str):
    if name in _FROM_API:  # the coding API, imported on first use (PEP 562)
        from . import api

        return getattr(api, name)
    if name in _FROM_ENCODER:  # the encoder (the numpy one on a CPU where it can: no torch)
        from .encoding import backends

        return getattr(backends, name)
    if name in _FROM_DECODER:  # the decoder (numpy backend on a CPU: no torch)
        from .decoding import decoder

        return getattr(decoder, name)
    raise AttributeError(f"module 'clccodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_API) | set(_FROM_ENCODER) | set(_FROM_DECODER))
