"""What `clc eval` writes: the results JSON and the RD plot of an EvalReport, both written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from ..io.files import write_atomic
from ..errors import UsageError
from . import anchors as anchor_mod


def check_destination(path: Path | None, option: str, force: bool) -> None:
    """Refuse an output that exists (without force) or whose folder does not, before any work starts."""
    if path is None:
        return
    if path.exists() and not force:
        raise UsageError(f"{path} exists (use --force to overwrite)")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: folder does not exist")


def write_json(report, path: Path) -> None:
    """The report in CompressAI's layout plus per-image records, BD-rates and the classical codecs."""
    write_atomic(path, (json.dumps(report.to_json(), indent=1) + "\n").encode(), force=True)


def write_plot(report, path: Path) -> None:
    """PSNR and MS-SSIM against bpp: the learned codec, the live classical codecs, the default plot anchors."""
    from .plots import plot_rd

    shown = [c for c in report.anchors if c.key in anchor_mod.DEFAULT_PLOT] or report.anchors
    title = "Kodak" if report.is_full_kodak else f"{len(report.images)} images"
    write_atomic(path, plot_rd([report.clc.curve()], [r.curve() for r in report.classical], shown, title), force=True)
