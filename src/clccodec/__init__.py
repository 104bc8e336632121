"""clccodec: Conditional Latent Coding, a learned image codec with dictionary references."""

import warnings as _warnings

# CompressAI calls torch.jit.script at import time, which newer torch flags as deprecated: not our users' concern.
_warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")

__version__ = "0.1.0"

from .api import Codec, decode, decode_file, encode, encode_file, read_info  # noqa: E402
from .errors import ClcError  # noqa: E402

__all__ = ["Codec", "ClcError", "decode", "decode_file", "encode", "encode_file", "read_info", "__version__"]
