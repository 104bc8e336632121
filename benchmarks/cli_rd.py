"""Shared by the CLI benchmarks (effort_rd.py, collection_rd.py): encode a set of images with one `clc encode`
process, decode them with one `clc decode` process, and measure real bpp, PSNR and the per-file seconds the CLI
prints."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

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
    """Encode `images` with `clc encode ... -o WORK/clc/ ENCODE_ARGS`, decode them, measure every file."""
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


def spread(images: list[Path], limit: int | None) -> list[Path]:
    """`limit` images spread evenly over the sorted set (all of them without a limit)."""
    if not limit or limit >= len(images):
        return images
    step = len(images) / limit
    return [images[int(i * step)] for i in range(limit)]


def bd_against(base: list[dict], cur: list[dict]) -> tuple[float | None, float | None]:
    """BD-rate (PSNR) of the mean curve `cur` against `base` (points with bpp and psnr): all points, <= 1 bpp."""
    from clccodec.evaluation.bd import bd_rate_result

    curves = ([p["bpp"] for p in base], [p["psnr"] for p in base], [p["bpp"] for p in cur], [p["psnr"] for p in cur])
    return bd_rate_result(*curves).value, bd_rate_result(*curves, max_rate=1.0).value


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f} %"


def report(text: str, out: dict, md: str | None, json_path: str | None) -> None:
    """Print the Markdown summary and write it and the full results where asked."""
    import json

    print(text)
    if md:
        Path(md).write_text(text + "\n")
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=1))
