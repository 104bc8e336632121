"""What every encoder shares: the checks of an encode's arguments and the result it returns (api.Codec, the torch
encoder, and encoding/backends.Encoder, which may run the numpy one). Imports neither torch nor numpy's encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..defaults import DEFAULT_NEAR_LOSSLESS_QUALITY, DEFAULT_QUALITY, NEAR_MAX
from ..errors import UsageError, check_number
from .effort import EFFORT_MAX, EFFORT_MIN

if TYPE_CHECKING:
    from .ratecontrol import Target


@dataclass
class EncodeResult:
    data: bytes
    reconstruction: np.ndarray | None  # the pixels a decoder gets (uint8 HxWx3), when asked for
    notes: list[str]  # about the input (alpha dropped, ...) and a target that was not met
    quality: float = DEFAULT_QUALITY  # the quality coded (the one found, with a target)
    refs: int = 0  # the references the file uses
    target_note: str = ""  # a target out of reach: what was reached (also among the notes)


def check_encode_args(quality: float | None, refs: Any, effort: Any, *, target_bpp: Any = None,
                      target_size: Any = None, target_psnr: Any = None, slices: Any = None,
                      near_lossless: Any = None, slice_count: int | None = None) -> tuple[float, list[Target]]:
    """The checks of every encode's arguments (UsageError with a one-line message), before any work: the
    quality to code (the default one for None) and the target given, if any. `slice_count`: the model's, the
    bound of `slices` (None: not known here)."""
    from ..format.container import MAX_REFS
    from ..model.quality import QUALITY_MAX, QUALITY_MIN
    from .ratecontrol import Target

    if quality is None:
        quality = DEFAULT_QUALITY if near_lossless is None else DEFAULT_NEAR_LOSSLESS_QUALITY
    check_number("quality", quality, QUALITY_MIN, QUALITY_MAX)
    check_number("refs", refs, 0, MAX_REFS, integer=True)
    check_number("effort", effort, EFFORT_MIN, EFFORT_MAX, integer=True)
    name = "slices" if slice_count is None else f"slices (the model codes {slice_count})"
    check_number(name, slices, 0, slice_count, integer=True, optional=True)
    check_number("target_bpp", target_bpp, 0, optional=True)
    check_number("target_size", target_size, 1, integer=True, optional=True)
    check_number("target_psnr", target_psnr, 0, optional=True)
    check_number("near_lossless", near_lossless, 0, NEAR_MAX, integer=True, optional=True)
    targets = [Target(k, float(v)) for k, v in (("bpp", target_bpp), ("size", target_size), ("psnr", target_psnr))
               if v is not None]
    if len(targets) > 1:
        raise UsageError("give at most one of target_bpp, target_size and target_psnr")
    if near_lossless is not None and (targets or slices is not None):
        raise UsageError("near_lossless codes every sample within a bound: it takes no target and no slices")
    return float(quality), targets
