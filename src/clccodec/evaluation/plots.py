"""RD plots (matplotlib, Agg backend, PNG): PSNR-bpp and MS-SSIM(dB)-bpp, learned codec against anchors and
the classical codecs run live."""

from __future__ import annotations

import io
from collections.abc import Sequence

from .anchors import Curve
from .bd import msssim_db

_ANCHOR_STYLE = {"linestyle": "--", "linewidth": 1.1, "marker": ".", "markersize": 4, "alpha": 0.85}
_LIVE_STYLE = {"linestyle": "-", "linewidth": 1.3, "marker": "s", "markersize": 3.5}
_CLC_STYLE = {"linestyle": "-", "linewidth": 2.4, "marker": "o", "markersize": 6, "color": "black", "zorder": 10}


def _visible_range(curves: Sequence[Curve], values, xmax: float) -> tuple[float, float] | None:
    ys = [y for c in curves for x, y in zip(c.bpp, values(c) or []) if x <= xmax]
    if not ys:
        return None
    lo, hi = min(ys), max(ys)
    pad = 0.04 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def plot_rd(main: Sequence[Curve], live: Sequence[Curve], anchors: Sequence[Curve], title: str = "Kodak",
            max_bpp: float | None = None) -> bytes:
    """Render the RD figure; returns PNG bytes (the caller writes them atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    everything = [*main, *live, *anchors]
    if max_bpp is None:
        top = max((max(c.bpp) for c in (main or everything) if c.bpp), default=2.0)
        max_bpp = max(1.0, min(3.0, top * 1.15))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13.5, 5.4), dpi=110)
    groups = ((anchors, _ANCHOR_STYLE), (live, _LIVE_STYLE), (main, _CLC_STYLE))
    # fixed colours per curve, the same in both panels (anchors: tab10, live codecs: Dark2)
    tab10, dark2 = plt.get_cmap("tab10").colors, plt.get_cmap("Dark2").colors
    color = {id(c): tab10[i % len(tab10)] for i, c in enumerate(anchors)}
    color |= {id(c): dark2[i % len(dark2)] for i, c in enumerate(live)}
    for ax, values, ylabel in ((ax1, lambda c: c.psnr, "PSNR-RGB [dB]"),
                               (ax2, lambda c: msssim_db(c.msssim) if c.msssim else None,
                                "MS-SSIM-RGB [dB]  (-10 log10(1 - MS-SSIM))")):
        for curves, style in groups:
            for c in curves:
                ys = values(c)
                if not ys:
                    continue
                ax.plot(c.bpp, ys, label=c.label, **({"color": color.get(id(c))} | style))
        ax.set_xlim(0, max_bpp)
        yr = _visible_range(everything, values, max_bpp)
        if yr:
            ax.set_ylim(*yr)
        ax.set_xlabel("bits per pixel (from real file sizes)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax1.set_title(f"{title}: PSNR")
    ax2.set_title(f"{title}: MS-SSIM")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
