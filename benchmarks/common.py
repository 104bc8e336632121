"""Helpers shared by the benchmark scripts (a module, not a script): the synthetic test pattern, image sizes,
`clc` runs through the real CLI with their per-file seconds, BD-rates of mean curves and the report writer.

Nothing here imports clccodec at module level: compare.py imports this module next to an older source tree.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

# -- images -----------------------------------------------------------------------------------------------------------


def parse_sizes(spec: str) -> list[tuple[int, int]]:
    """'256x256,1920x1080' -> [(256, 256), (1920, 1080)] (width, height); '512' is 512x512."""
    out = []
    for part in spec.split(","):
        w, _, h = part.strip().lower().partition("x")
        out.append((int(w), int(h or w)))
    return out


def synthetic(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like pattern (gradients, edges, texture, noise), uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(xx / 23) * np.cos(yy / 31) + 30 * np.sin((xx * 0.7 + yy) / 5.0),
        90 + 0.35 * xx * 255 / max(w, 1) * 0.6 + 40 * (yy > h / 2) + 25 * ((xx // 48 + yy // 48) % 2),
        160 - 80 * np.cos((xx + yy) / 37) + 20 * np.sin(yy / 3.0),
    ], axis=2)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def from_photo(path: str, h: int, w: int) -> np.ndarray:
    """A photo cropped to (h, w), tiled (mirrored) where it is smaller."""
    from PIL import Image

    src = np.asarray(Image.open(path).convert("RGB"))
    reps = (-(-h // src.shape[0]), -(-w // src.shape[1]), 1)
    if reps[0] > 1 or reps[1] > 1:
        src = np.concatenate([src, src[::-1]] * reps[0], axis=0)[:max(h, src.shape[0])]
        src = np.concatenate([src, src[:, ::-1]] * reps[1], axis=1)
    return np.ascontiguousarray(src[:h, :w])


def spread(images: list[Path], limit: int | None) -> list[Path]:
    """`limit` images spread evenly over the sorted set (all of them without a limit)."""
    if not limit or limit >= len(images):
        return images
    step = len(images) / limit
    return [images[int(i * step)] for i in range(limit)]


def use_model(model: str | None, dictionary: str | None = None) -> None:
    """Make every `clc` process this script starts use these weights and this dictionary ($CLC_MODEL,
    $CLC_DICTIONARY; None: the shipped ones)."""
    if model:
        os.environ["CLC_MODEL"] = str(Path(model).resolve())
    if dictionary:
        os.environ["CLC_DICTIONARY"] = dictionary if dictionary == "none" else str(Path(dictionary).resolve())


# -- the CLI ----------------------------------------------------------------------------------------------------------

BLAS_PROBE = ("from clccodec.cli.startup import blas_kernels, choose_blas_kernels\n"
              "choose_blas_kernels()\nimport numpy\nprint(blas_kernels())")


def blas_in_clc() -> str:
    """The BLAS kernels a `clc` process runs on this machine (its entry point chooses them: cli/startup.py)."""
    r = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True)
    return r.stdout.strip() or f"unknown ({r.stderr.strip()[-200:]})"


def blas_here() -> str:
    """The BLAS kernels this process runs (a library user's: no start-up choice)."""
    from clccodec.cli.startup import blas_kernels

    return blas_kernels()


LINE = re.compile(r"^(?P<src>\S+) -> (?P<dst>\S+)\s.*?\s(?P<secs>[0-9.]+) s")


def clc(*args: str) -> list[str]:
    """Run `python -m clccodec ARGS`; its stderr lines (the per-file report), or exit with its error."""
    r = subprocess.run([sys.executable, "-m", "clccodec", *args], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "400"})
    if r.returncode:
        sys.exit(f"clc {' '.join(args[:3])} ...: {r.stderr.strip()}")
    return r.stderr.splitlines()


def per_file_seconds(lines: list[str]) -> dict[str, float]:
    return {Path(m["src"]).stem: float(m["secs"]) for m in map(LINE.match, lines) if m}


def encode_decode(images: list[Path], work: Path, encode_args: list[str], decode_args: list[str] = ()) -> dict:
    """Encode `images` with one `clc encode ... -o WORK/clc/ ENCODE_ARGS` process, decode them with one
    `clc decode`, and measure every file: real bytes and bpp, PSNR on 8-bit RGB, the per-file seconds."""
    from PIL import Image

    from clccodec.evaluation.metrics import psnr

    enc, dec = work / "clc", work / "png"
    for d in (enc, dec):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    enc_s = per_file_seconds(clc("encode", *map(str, images), "-o", f"{enc}/", *encode_args, "--force"))
    dec_s = per_file_seconds(clc("decode", *map(str, sorted(enc.glob("*.clc"))), "-o", f"{dec}/",
                                 *decode_args, "--force"))
    rows = []
    for src in images:
        a = np.asarray(Image.open(src).convert("RGB"))
        b = np.asarray(Image.open(dec / f"{src.stem}.png").convert("RGB"))
        nbytes = (enc / f"{src.stem}.clc").stat().st_size
        rows.append({"image": src.stem, "bytes": nbytes, "bpp": 8 * nbytes / (a.shape[0] * a.shape[1]),
                     "psnr": psnr(a, b), "encode_s": enc_s[src.stem], "decode_s": dec_s[src.stem]})
    return {"images": rows, "bpp": statistics.mean(r["bpp"] for r in rows),
            "psnr": statistics.mean(r["psnr"] for r in rows),
            "encode_s": statistics.mean(r["encode_s"] for r in rows),
            "decode_s": statistics.mean(r["decode_s"] for r in rows)}


# -- reports ----------------------------------------------------------------------------------------------------------


def bd_against(base: list[dict], cur: list[dict]) -> tuple[float | None, float | None]:
    """BD-rate (PSNR) of the mean curve `cur` against `base` (points with bpp and psnr): all points, <= 1 bpp.
    None where the curves do not allow one (too few points, no overlap)."""
    from clccodec.evaluation.bd import bd_rate_result

    curves = ([p["bpp"] for p in base], [p["psnr"] for p in base], [p["bpp"] for p in cur], [p["psnr"] for p in cur])
    return bd_rate_result(*curves).value, bd_rate_result(*curves, max_rate=1.0).value


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f} %"


def report(text: str, out: dict, md: str | None, json_path: str | None) -> None:
    """Print the Markdown summary and write it and the full results where asked."""
    print(text)
    if md:
        Path(md).write_text(text + "\n")
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=1) + "\n")
