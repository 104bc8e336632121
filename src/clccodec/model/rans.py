"""CompressAI's rANS coder as the decoders use it, without torch: the padded strings it needs, and its compiled
extension loaded on its own (the compressai package's __init__ imports torch and its whole model zoo)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError, ModelError


@dataclass
class EntropyStrings:
    """The entropy-coded strings of an image: the hyper-latent's, then one per latent slice (what
    CLCModel.compress returns; a decoder takes anything with these two attributes, a parsed .clc file too)."""

    hyper: bytes
    slices: list[bytes]


def padded(string: bytes, symbols: int) -> bytes:
    """The string followed by zero bytes, for CompressAI's rANS decoder, which does not bound its reads.

    A valid string is never read past its end. A corrupt one can drive the decoder beyond it: every symbol
    consumes at most 16 bits (the CDF precision) and bypass runs stop on zero bits, so 2 bytes per symbol of
    zeros keep every read inside this buffer, and the result deterministic.
    """
    return string + bytes(2 * symbols + 64)


def min_bits(cdf: Any, lengths: Any) -> Any:
    """The fewest bits any symbol coded with each CDF table can cost: -log2 of its most probable symbol's
    frequency (the tables are CompressAI's quantised CDFs, 16-bit precision; numpy arrays (tables, n) and
    (tables,)). A string of N symbols is at least about the sum of these (`too_short`)."""
    import numpy as np

    cdf = np.asarray(cdf, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    best = np.array([np.diff(cdf[i, : lengths[i]]).max() for i in range(len(lengths))], dtype=np.float64)
    return -np.log2(best / (1 << CDF_PRECISION))


CDF_PRECISION = 16  # CompressAI's entropy coder's probability precision


def too_short(string: bytes, bits: float) -> bool:
    """Whether a rANS string is shorter than symbols costing at least `bits` can be. rANS spends, per symbol, at
    least (1 - 2^-15) of -log2 of its frequency (the state's rounding), and its 64-bit final state holds at most
    33 bits beyond the 31 it starts with; the margin below is wider than both, so a valid string is never
    refused."""
    return 8 * len(string) + 64 < bits * (1 - 2**-12)


def check_string(string: bytes, table_bits: Any, indexes: Any) -> None:
    """Refuse a string too short for the symbols it must hold (`indexes`: their tables; `table_bits`: min_bits of
    every table), before decoding it."""
    import numpy as np

    idx = np.asarray(indexes).reshape(-1)
    if too_short(string, float(np.asarray(table_bits)[idx].sum())):
        raise FormatError(f"corrupt file: an entropy-coded string ({len(string)} bytes) is too short for its "
                          f"{idx.size:,} symbols")


_RANS: Any = None


def rans_module() -> Any:
    """CompressAI's compiled rANS extension (compressai.ans), imported by itself when the compressai package is
    not imported yet, so that a decode without torch never runs compressai's __init__."""
    global _RANS
    if _RANS is None:
        if "compressai.ans" in sys.modules:
            _RANS = sys.modules["compressai.ans"]
        else:
            _RANS = _load_extension()
    return _RANS


def _load_extension() -> Any:
    spec = importlib.util.find_spec("compressai")  # a top-level spec: finding it runs nothing
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"ans{suffix}"
            if path.exists():
                loader = importlib.machinery.ExtensionFileLoader("compressai.ans", str(path))
                module = importlib.util.module_from_spec(
                    importlib.util.spec_from_file_location("compressai.ans", path, loader=loader))
                loader.exec_module(module)
                # under its own name: a later `import compressai` finds it instead of loading it twice (pybind11
                # refuses to register its types again)
                sys.modules["compressai.ans"] = module
                return module
    raise ModelError("CompressAI's rANS extension is missing (pip install compressai)")
