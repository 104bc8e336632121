"""clccodec: Conditional Latent Coding, a learned image codec with dictionary references.

    import clccodec
    data = clccodec.encode("photo.png", quality=3)
    image = clccodec.decode(data)
    pixels = clccodec.LiteDecoder().decode_full(data).pixels   # decoding without torch (lite.py)

Importing the package is cheap: torch and the model load only when a codec is first used (`read_info` and the
errors never need them).
"""

from __future__ import annotations

import warnings as _warnings

from .container import read_info
from .errors import ClcError

# CompressAI calls torch.jit.script at import time, which newer torch flags as deprecated: not our users' concern.
_warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")

__version__ = "0.12.0"

_FROM_API = ("Codec", "decode", "decode_file", "encode", "encode_file")
__all__ = ["Codec", "ClcError", "LiteDecoder", "decode", "decode_file", "encode", "encode_file", "read_info",
           "__version__"]


def __getattr__(name: str):
    if name in _FROM_API:  # the coding API, imported on first use (PEP 562)
        from . import api

        return getattr(api, name)
    if name == "LiteDecoder":  # the torch-free decoder (lite.py)
        from .lite import LiteDecoder

        return LiteDecoder
    raise AttributeError(f"module 'clccodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_API) | {"LiteDecoder"})
