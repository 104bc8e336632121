"""The RD benchmark behind `clc eval`: real bytes in, decoded pixels out, metrics on the decoded pixels.

For every image and quality the learned codec goes through the public API exactly as a user's file would:
`Codec.encode_full(pixels, quality, refs)` gives the complete .clc file (header, indices, checksums: bpp is
8 x len(file) / pixels), `Codec.decode_pixels(bytes)` decodes it from those bytes alone, and PSNR / MS-SSIM are
measured between the decoded uint8 pixels and the source's 8-bit RGB pixels. Classical codecs (classical.py) go
through the same measurement. Per-quality averages are means of the per-image values (CompressAI's
convention), stored in CompressAI's JSON layout so its plotting tools and ours read the same file.

Timing: wall seconds (time.perf_counter) of the encode call (pixels in memory -> bytes, dictionary retrieval
included) and of the decode call (bytes -> pixels); image file reading and writing are excluded. One untimed
warm-up encode/decode runs first so lazy initialisation does not land on the first image.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import DEFAULT_REFS
from ..errors import UsageError
from ..format.ids import file_id
from ..io.images import list_images
from ..model.quality import QUALITY_MAX, QUALITY_MIN
from . import anchors as anchor_mod
from .anchors import Curve
from .bd import BDResult, bd_rate_result, msssim_db
from .classical import ClassicalCodec
from .metrics import ms_ssim, psnr

KODAK_NAMES = {f"kodim{i:02d}.png" for i in range(1, 25)}
BD_MAX_BPP = 1.0

Step = Callable[[str], None]


# -- inputs -------------------------------------------------------------------------------------------------------


def find_images(paths: Sequence[str | Path], limit: int | None = None) -> list[Path]:
    """Image files from folders (sorted, not recursive) and/or files, in the order given; the first `limit`."""
    found = list_images(paths)
    if limit is not None:
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        found = found[:limit]
    return found


@dataclass
class SourceImage:
    name: str
    pixels: np.ndarray  # uint8 (H, W, 3): what every codec gets and every metric compares against
    loaded: object  # the clccodec LoadedImage (grayscale flag etc.) for the learned codec


def load_images(files: Sequence[Path]) -> list[SourceImage]:
    from ..io.images import load_image

    out = []
    for f in files:
        img = load_image(f)
        out.append(SourceImage(f.name, img.pixels, img))
    return out


def parse_qualities(spec: str, lo: float = QUALITY_MIN, hi: float = QUALITY_MAX) -> list[float]:
    """'1-8', '1,2,3', '1-4,6,8', '1-3:0.5', '2.5' -> sorted unique qualities within [lo, hi]."""
    values: list[float] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?)?", part)
        if not m:
            raise UsageError(f"bad quality '{part}' (examples: 1-8, 1,2,3, 1-4,6, 1-3:0.5)")
        a = float(m.group(1))
        if m.group(2) is None:
            values.append(a)
            continue
        b, step = float(m.group(2)), float(m.group(3) or 1.0)
        if step <= 0 or b < a:
            raise UsageError(f"bad quality range '{part}'")
        n = int(round((b - a) / step))
        values += [round(a + i * step, 6) for i in range(n + 1) if a + i * step <= b + 1e-9]
    if not values:
        raise UsageError("no quality given")
    for v in values:
        if not lo <= v <= hi:
            raise UsageError(f"quality {v:g} is outside {lo:g}..{hi:g}")
    return sorted(set(values))


# -- measurements -------------------------------------------------------------------------------------------------


@dataclass
class Record:
    image: str
    width: int
    height: int
    setting: float  # quality for CLC, the swept parameter for a classical codec
    bytes: int
    psnr: float
    msssim: float
    msssim_scales: int
    encoding_time: float
    decoding_time: float

    @property
    def bpp(self) -> float:
        return 8.0 * self.bytes / (self.width * self.height)

    def to_dict(self, setting_name: str = "quality") -> dict:
        return {"image": self.image, "width": self.width, "height": self.height, setting_name: self.setting,
                "bytes": self.bytes, "bpp": self.bpp, "psnr-rgb": self.psnr, "ms-ssim-rgb": self.msssim,
                "ms-ssim-scales": self.msssim_scales, "encoding_time": self.encoding_time,
                "decoding_time": self.decoding_time}


def measure(name: str, original: np.ndarray, data: bytes, decoded: np.ndarray, setting: float, enc_s: float,
            dec_s: float) -> Record:
    if decoded.shape != original.shape:
        raise RuntimeError(f"{name}: decoded shape {decoded.shape} differs from the source {original.shape}")
    ms, scales = ms_ssim(original, decoded)
    h, w = original.shape[:2]
    return Record(name, w, h, setting, len(data), psnr(original, decoded), ms, scales, enc_s, dec_s)


@dataclass
class RDRun:
    """All records of one codec over the images and settings, with CompressAI-layout averages."""

    key: str
    name: str
    description: str
    setting_name: str  # "quality" or the classical codec's parameter
    settings: list[float]
    records: list[Record] = field(default_factory=list)
    kind: str = "live"  # clc | live
    meta: dict = field(default_factory=dict)

    def averages(self) -> dict:
        res: dict[str, list[float]] = {"bpp": [], "psnr-rgb": [], "ms-ssim-rgb": [], "encoding_time": [],
                                       "decoding_time": []}
        for s in self.settings:
            rs = [r for r in self.records if r.setting == s]
            if not rs:
                continue
            res["bpp"].append(float(np.mean([r.bpp for r in rs])))
            res["psnr-rgb"].append(float(np.mean([r.psnr for r in rs])))
            res["ms-ssim-rgb"].append(float(np.mean([r.msssim for r in rs])))
            res["encoding_time"].append(float(np.mean([r.encoding_time for r in rs])))
            res["decoding_time"].append(float(np.mean([r.decoding_time for r in rs])))
        return res

    def settings_done(self) -> list[float]:
        return [s for s in self.settings if any(r.setting == s for r in self.records)]

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "results": self.averages(),
                self.setting_name: self.settings_done(), "meta": self.meta,
                "per_image": [r.to_dict(self.setting_name) for r in self.records]}

    def curve(self) -> Curve:
        a = self.averages()
        return Curve(self.key, self.name, a["bpp"], a["psnr-rgb"], a["ms-ssim-rgb"], self.kind, self.description)


def _fmt_q(q: float) -> str:
    return f"{q:g}".replace(".", "p")


def run_clc(codec, images: Sequence[SourceImage], qualities: Sequence[float], refs: int,
            keep_dir: Path | None = None, step: Step | None = None, label: str | None = None,
            exact: bool = False) -> RDRun:
    """Encode every image at every quality through the API, decode from the bytes, measure."""
    from ..io.files import write_atomic

    model_id = codec.model_id.hex()
    dict_id = file_id(codec.dictionary.id).hex() if getattr(codec, "dictionary", None) is not None else None
    used_refs = refs if dict_id else 0
    name = label or f"CLC (model {model_id}, M={used_refs})"
    run = RDRun("clc", name, "", "quality", list(qualities), kind="clc")
    run.meta = {"model_id": model_id, "dictionary_id": dict_id, "refs": used_refs, "device": str(codec.device),
                "model_config": getattr(codec.model.cfg, "name", None),
                "synthesis": "exact" if exact else "fast (float32)"}
    run.description = (f"clccodec {name}: real .clc files from Codec.encode_full, decoded from the bytes by "
                       f"Codec.decode_pixels ({run.meta['synthesis']} synthesis); bpp = 8 x file bytes / pixels; "
                       f"PSNR/MS-SSIM on 8-bit RGB per image, then averaged; times: wall seconds of the encode and decode calls on {codec.device}")
    if images:  # untimed warm-up
        d = codec.encode_full(images[0].loaded, qualities[0], refs).data
        codec.decode_pixels(d, exact=exact)
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
    with_refs = 0  # files that kept their references (the encoder drops them where the file is smaller without)
    for q in qualities:
        for im in images:
            t0 = time.perf_counter()
            res = codec.encode_full(im.loaded, q, refs)
            data = res.data
            t1 = time.perf_counter()
            decoded, _ = codec.decode_pixels(data, exact=exact)
            t2 = time.perf_counter()
            if keep_dir is not None:
                write_atomic(keep_dir / f"{Path(im.name).stem}_q{_fmt_q(q)}.clc", data, force=True)
            run.records.append(measure(im.name, im.pixels, data, decoded, q, t1 - t0, t2 - t1))
            with_refs += bool(res.refs)
            if step:
                step(f"CLC q={q:g} {im.name}")
    run.meta["files_with_refs"] = with_refs
    return run


def run_classical(codec: ClassicalCodec, images: Sequence[SourceImage], step: Step | None = None) -> RDRun:
    run = RDRun(codec.key, codec.label, codec.description(), codec.param, [float(v) for v in codec.values])
    run.meta = {"format": codec.fmt, "options": codec.options}
    for v in codec.values:
        for im in images:
            t0 = time.perf_counter()
            data = codec.encode(im.pixels, v)
            t1 = time.perf_counter()
            decoded = codec.decode(data)
            t2 = time.perf_counter()
            run.records.append(measure(im.name, im.pixels, data, decoded, float(v), t1 - t0, t2 - t1))
            if step:
                step(f"{codec.key} {codec.param}={v} {im.name}")
    return run


# -- BD-rate table ------------------------------------------------------------------------------------------------


@dataclass
class BDRow:
    key: str
    label: str
    kind: str
    vs_le1: BDResult  # test vs this curve, PSNR, <= 1 bpp
    vs_all: BDResult  # test vs this curve, PSNR, whole overlap
    vs_msssim: BDResult | None  # test vs this curve, MS-SSIM in dB, whole overlap
    ref_vs_vtm: BDResult | None  # this curve vs VTM, PSNR, <= 1 bpp (the published ladder)

    def to_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "kind": self.kind,
                "bd_rate_psnr_le1bpp": self.vs_le1.to_dict(), "bd_rate_psnr_all": self.vs_all.to_dict(),
                "bd_rate_msssim_db_all": self.vs_msssim.to_dict() if self.vs_msssim else None,
                "this_vs_vtm_psnr_le1bpp": self.ref_vs_vtm.to_dict() if self.ref_vs_vtm else None}


def bd_rows(test: Curve, references: Sequence[Curve], vtm: Curve | None) -> list[BDRow]:
    rows = []
    for ref in references:
        ms = None
        if ref.msssim and test.msssim:
            ms = bd_rate_result(ref.bpp, msssim_db(ref.msssim), test.bpp, msssim_db(test.msssim))
        rows.append(BDRow(
            ref.key, ref.label, ref.kind,
            bd_rate_result(ref.bpp, ref.psnr, test.bpp, test.psnr, max_rate=BD_MAX_BPP),
            bd_rate_result(ref.bpp, ref.psnr, test.bpp, test.psnr),
            ms,
            bd_rate_result(vtm.bpp, vtm.psnr, ref.bpp, ref.psnr, max_rate=BD_MAX_BPP) if vtm else None,
        ))
    return rows


# -- the whole evaluation -----------------------------------------------------------------------------------------


@dataclass
class EvalReport:
    source: str
    images: list[str]
    clc: RDRun | None
    classical: list[RDRun]
    anchors: list[Curve]
    bd: list[BDRow]
    notes: list[str] = field(default_factory=list)

    @property
    def is_full_kodak(self) -> bool:
        return set(self.images) == KODAK_NAMES

    def headline(self) -> BDResult | None:
        for r in self.bd:
            if r.key == anchor_mod.REFERENCE:
                return r.vs_le1
        return None

    def to_json(self) -> dict:
        base = self.clc.to_json() if self.clc else {"name": None, "description": None, "results": None}
        head = self.headline()
        return base | {
            "source": self.source,
            "images": self.images,
            "environment": environment(self.clc.meta.get("device") if self.clc else "cpu"),
            "bd_rate": {
                "method": ("Bjøntegaard: cubic least-squares fit of ln(bpp) vs quality, integrated over the "
                           "overlapping quality range (clccodec.evaluation.bd); 'le1bpp' drops points above "
                           f"{BD_MAX_BPP:g} bpp from both curves first; negative = fewer bits than the reference"),
                "test": self.clc.name if self.clc else None,
                "vs_vtm_psnr_le1bpp": head.value if head else None,
                "anchors_comparable": self.is_full_kodak,
                "rows": [r.to_dict() for r in self.bd],
            },
            "classical": {c.key: c.to_json() for c in self.classical},
            "notes": self.notes,
        }


def environment(device: str) -> dict:
    import PIL
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "pillow": PIL.__version__,
           "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def evaluate(images: Sequence[SourceImage], source: str, codec=None, qualities: Sequence[float] = (),
             refs: int = DEFAULT_REFS, classical: Sequence[ClassicalCodec] = (), anchor_keys: Sequence[str] = (),
             keep_dir: Path | None = None, step: Step | None = None, exact: bool = False) -> EvalReport:
    """Run the learned codec (if given) and the classical codecs, and tabulate BD-rates of the learned codec."""
    notes: list[str] = []
    clc = run_clc(codec, images, qualities, refs, keep_dir, step, exact=exact) if codec is not None else None
    if clc is not None and clc.meta["refs"] != refs and refs:
        notes.append("no reference dictionary loaded: coded without references (M=0)")
    elif clc is not None and refs:
        notes.append(f"{clc.meta['files_with_refs']} of {len(clc.records)} files kept their {refs} references "
                     "(the encoder writes the smaller of the files with and without them)")
    live = []
    for c in classical:
        if not c.available():
            notes.append(f"{c.key}: not available in this Pillow build, skipped")
            continue
        live.append(run_classical(c, images, step))
    curves = anchor_mod.load_many(list(anchor_keys))
    vtm = anchor_mod.load(anchor_mod.REFERENCE)
    rows: list[BDRow] = []
    if clc is not None:
        rows = bd_rows(clc.curve(), curves + [r.curve() for r in live], vtm)
    names = [im.name for im in images]
    if curves and set(names) != KODAK_NAMES:
        notes.append(f"the anchors are averages over the 24 Kodak images; this run has {len(names)} other/fewer "
                     "images, so BD-rates against anchors are indicative only (live codecs ran on the same images)")
    return EvalReport(source, names, clc, live, curves, rows, notes)


def count_steps(n_images: int, qualities: Sequence[float], classical: Sequence[ClassicalCodec]) -> int:
    return n_images * (len(qualities) + sum(len(c.values) for c in classical if c.available()))
