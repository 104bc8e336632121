"""The coding defaults and the environment variables that change them: one home, importing nothing heavy.

Every command, the Python API and the decoders read their defaults from here; bounds that the file format
imposes (MAX_REFS, the quality range) live with the format and the model.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"  # package data: found alike in a checkout and a wheel
DEFAULT_MODEL = SHIPPED_DIR / "clc-full.pt"
DEFAULT_DICTIONARY = SHIPPED_DIR / "default.clcdict"
MODEL_ENV = "CLC_MODEL"  # weights file used when none is given
DICTIONARY_ENV = "CLC_DICTIONARY"  # reference dictionary used when none is given

# near the quality other codecs' defaults aim at (Kodak: 34.7 dB at 0.91 bpp, beside cwebp's 35.1 dB at 1.00 and
# cjpeg's 34.5 dB at 1.37; benchmarks/results/v14/defaults_lossless.md); quality 3 gave 31.4 dB
DEFAULT_QUALITY = 5.0
# the lossy layer under a near-lossless residual: the top quality gives the smallest files (kodim23, ±0..2: 4-9 %
# smaller than quality 6; benchmarks/near_lossless.py)
DEFAULT_NEAR_LOSSLESS_QUALITY = 8.0
NEAR_MAX = 32  # the largest near-lossless bound (±32 is already 33 dB: beyond it the lossy layer alone does better)
DEFAULT_REFS = 3  # references an encoder retrieves unless told otherwise (the paper's M = 3)
DEFAULT_EFFORT = 0
DETAIL_MODES = ("mean", "sample")  # how the slices a file lacks are filled (decoding/progressive.py)
DEFAULT_DETAIL = DETAIL_MODES[0]
# build-dict --kmeans auto: scikit-learn's MiniBatchKMeans up to this many crops (how every dictionary so far was
# built), FAISS k-means above (dictionary/build.py kmeans_method)
SKLEARN_MAX_CROPS = 200_000
# the largest image a decoder produces unless told otherwise: Pillow's MAX_IMAGE_PIXELS (about 89 MP), so that a
# small hostile file cannot make a service allocate and compute for minutes; CLC_MAX_PIXELS / --max-pixels raise it
DEFAULT_MAX_PIXELS = 89_478_485
MAX_PIXELS_ENV = "CLC_MAX_PIXELS"


def default_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV, DEFAULT_MODEL))


def max_pixels(value: int | None = None) -> int:
    """The decoder's pixel limit: `value`, else $CLC_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    if value is None:
        env = os.environ.get(MAX_PIXELS_ENV)
        if env is None:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(env.replace("_", ""))
        except ValueError:
            from .errors import UsageError

            raise UsageError(f"${MAX_PIXELS_ENV} must be a whole number of pixels, got {env!r}") from None
    if value < 1:
        from .errors import UsageError

        raise UsageError(f"the pixel limit must be at least 1, got {value}")
    return value


def default_dictionary_path() -> Path | None:
    """The default dictionary, if there is one (an installation may leave it out)."""
    p = Path(os.environ.get(DICTIONARY_ENV, DEFAULT_DICTIONARY))
    return p if p.exists() else None
