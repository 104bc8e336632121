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

DEFAULT_QUALITY = 3.0
DEFAULT_REFS = 3  # references an encoder retrieves unless told otherwise (the paper's M = 3)
DEFAULT_EFFORT = 0
DETAIL_MODES = ("mean", "sample")  # how the slices a file lacks are filled (decoding/progressive.py)
DEFAULT_DETAIL = DETAIL_MODES[0]


def default_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV, DEFAULT_MODEL))


def default_dictionary_path() -> Path | None:
    """The default dictionary, if there is one (an installation may leave it out)."""
    p = Path(os.environ.get(DICTIONARY_ENV, DEFAULT_DICTIONARY))
    return p if p.exists() else None
