"""Reference rate-distortion curves: published Kodak anchors and classical codecs measured on this machine kind.

The data lives in `anchor_data/` (copied verbatim from ../shared/anchors; sources in anchor_data/SOURCES.md).
Every curve is a `Curve`; curves also come from `clc eval` itself and from the live classical codecs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

DATA = Path(__file__).resolve().parent / "anchor_data"

# key -> (file under anchor_data, label): published curves, then codecs measured here (measured_here/)
ALL: dict[str, tuple[str, str]] = {
    "vtm": ("kodak_vtm.json", "VTM (VVC, 4:4:4)"),
    "hm": ("kodak_hm.json", "HM (HEVC)"),
    "bpg": ("kodak_bpg_444_x265_ycbcr.json", "BPG 4:4:4"),
    "av1": ("kodak_av1.json", "AV1"),
    "jpeg2000": ("kodak_jpeg2000.json", "JPEG 2000"),
    "jpeg": ("kodak_jpeg.json", "JPEG"),
    "webp": ("kodak_webp.json", "WebP"),
    "factorized": ("kodak_compressai-bmshj2018-factorized_mse_cpu.json", "bmshj2018-factorized"),
    "hyperprior": ("kodak_compressai-bmshj2018-hyperprior_mse_cpu.json", "bmshj2018-hyperprior"),
    "mbt2018-mean": ("kodak_compressai-mbt2018-mean_mse_cpu.json", "mbt2018-mean"),
    "mbt2018": ("kodak_compressai-mbt2018_mse_cpu.json", "mbt2018"),
    "cheng2020-anchor": ("kodak_compressai-cheng2020-anchor_mse_cpu.json", "cheng2020-anchor"),
    "cheng2020-attn": ("kodak_compressai-cheng2020-attn_mse_cpu.json", "cheng2020-attn"),
    "minnen2020": ("kodak_paper-minnen2020-cc10_mse.json", "minnen2020 (paper)"),
    "elic": ("kodak_paper-elic2022_mse.json", "ELIC (paper)"),
    "local-hevc444": ("measured_here/local_hevc444_x265.json", "x265 intra 4:4:4 slow [local]"),
    "local-hevc444-veryslow": ("measured_here/local_hevc444_x265_veryslow.json", "x265 intra 4:4:4 veryslow [local]"),
    "local-avif444": ("measured_here/local_avif444.json", "avifenc 4:4:4 [local]"),
    "local-avif420": ("measured_here/local_avif420.json", "avifenc 4:2:0 [local]"),
    "local-webp": ("measured_here/local_webp.json", "cwebp -m 6 [local]"),
    "local-jxl": ("measured_here/local_jxl.json", "cjxl e7 [local]"),
    "local-jpeg420": ("measured_here/local_jpeg420.json", "cjpeg 4:2:0 [local]"),
    "local-jpeg420-noopt": ("measured_here/local_jpeg420_nooptimize.json", "cjpeg 4:2:0 no-opt [local]"),
    "local-jpeg444": ("measured_here/local_jpeg444.json", "cjpeg 4:4:4 [local]"),
}
MEASURED = tuple(k for k, (file, _) in ALL.items() if file.startswith("measured_here/"))
REFERENCE = "vtm"  # the BD-rate reference everything is quoted against

# Curves `clc eval` compares against by default (BD table), and the ones drawn on the RD plot.
DEFAULT_BD = ("vtm", "hm", "bpg", "av1", "jpeg", "webp", "hyperprior", "mbt2018-mean", "mbt2018",
              "cheng2020-anchor", "minnen2020", "elic", "local-hevc444", "local-avif444", "local-webp",
              "local-jpeg420")
DEFAULT_PLOT = ("vtm", "bpg", "hyperprior", "mbt2018", "cheng2020-anchor", "elic", "webp", "jpeg")

# The published ladder (BD-rate vs VTM, PSNR, <= 1 bpp) from ../shared/anchors/README.md, for checking bd.py.
README_LADDER = {"jpeg": 290.0, "webp": 94.0, "hyperprior": 36.0, "bpg": 31.0, "mbt2018-mean": 25.0,
                 "av1": 22.0, "mbt2018": 12.0, "cheng2020-anchor": 4.0, "minnen2020": 1.0, "elic": -7.0,
                 "local-hevc444": 30.6, "local-avif444": 42.2, "local-avif420": 51.2, "local-webp": 101.1,
                 "local-jxl": 134.9, "local-jpeg420": 238.7}


@dataclass
class Curve:
    """An RD curve: points sorted by rate; MS-SSIM (0..1) where known."""

    key: str
    label: str
    bpp: list[float]
    psnr: list[float]
    msssim: list[float] | None = None
    kind: str = "anchor"  # anchor | measured | live | clc
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        order = sorted(range(len(self.bpp)), key=lambda i: self.bpp[i])
        self.bpp = [float(self.bpp[i]) for i in order]
        self.psnr = [float(self.psnr[i]) for i in order]
        if self.msssim is not None:
            self.msssim = [float(self.msssim[i]) for i in order]

    @classmethod
    def from_compressai(cls, key: str, label: str, blob: dict, kind: str = "anchor") -> "Curve":
        r = blob["results"]
        ms = r.get("ms-ssim-rgb", r.get("ms-ssim"))
        return cls(key, label, list(r["bpp"]), list(r["psnr-rgb"]), list(ms) if ms else None, kind,
                   blob.get("description", blob.get("name", "")))


def names() -> list[str]:
    return list(ALL)


def parse_keys(spec: str) -> list[str]:
    """--anchors: 'default', 'all', 'none' or comma-separated keys (and groups), de-duplicated in order."""
    s = spec.strip().lower()
    if s in ("", "none"):
        return []
    keys: list[str] = []
    for part in s.split(","):
        part = part.strip()
        if part == "default":
            keys += DEFAULT_BD
        elif part == "all":
            keys += names()
        elif part in ALL:
            keys.append(part)
        elif part:
            raise UsageError(f"unknown anchor '{part}' (known: {', '.join(names())}, default, all, none)")
    return list(dict.fromkeys(keys))


def load(key: str) -> Curve:
    if key not in ALL:
        raise KeyError(f"unknown anchor '{key}' (known: {', '.join(ALL)})")
    file, label = ALL[key]
    blob = json.loads((DATA / file).read_text())
    return Curve.from_compressai(key, label, blob, "measured" if key in MEASURED else "anchor")


def load_many(keys: list[str] | tuple[str, ...]) -> list[Curve]:
    return [load(k) for k in keys]
