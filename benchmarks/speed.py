#!/usr/bin/env python
"""Encode/decode speed and peak memory of the codec vs image size (256x256 .. 3840x2160), CPU or GPU.

    python benchmarks/speed.py                                   # shipped model, all sizes, auto device
    python benchmarks/speed.py --model runs/x/clc.pt --device cpu --json speed_cpu.json
    python benchmarks/speed.py --sizes 256x256,1920x1080 --repeat 5 --image some_photo.png
    python benchmarks/speed.py --sizes 64x64 --repeat 1 --model tiny.pt --dict none --device cpu   # smoke run

Each size runs in its own fresh worker process, so its peak memory is its own:
* encode / decode seconds: wall time of Codec.encode_full (pixels in memory -> .clc bytes) and of
  Codec.decode_pixels (bytes -> pixels; the default fast synthesis), median over the timed runs, after an
  untimed warm-up at 256x256. With --exact also decode_pixels(exact=True) (the bit-exact synthesis).
  A size is repeated up to --repeat times, but no more once its runs have used --budget seconds.
* encode / decode CPU seconds: process CPU time (all threads, user + system) of the same runs, median: less
  sensitive than wall time to other load on the machine (wall ~ CPU / threads on an idle machine).
* peak RSS: the process's resident-set high-water mark (VmHWM in /proc/self/status) during the encode runs and
  during the decode runs, reset in between through /proc/self/clear_refs; "base" is the RSS with the model
  loaded, before any coding. On GPU also the peak CUDA memory allocated (torch.cuda.max_memory_allocated).
* the image is a deterministic synthetic photo-like pattern (gradients, edges, texture, noise), or --image
  cropped/tiled to each size. bpp is from the real .clc bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import blas_here, from_photo, parse_sizes, synthetic

DEFAULT_SIZES = "256x256,512x512,768x512,1024x1024,1920x1080,2048x2048,3840x2160"


# -- worker (one size, fresh process) -----------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> dict:
    import torch

    from clccodec import Codec, read_info

    w, h = parse_sizes(args.size)[0]
    codec = Codec(args.model, None if args.dict is None else (False if args.dict == "none" else args.dict),
                  args.device)
    cuda = codec.device.type == "cuda"
    pixels = from_photo(args.image, h, w) if args.image else synthetic(h, w)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    warm = synthetic(256, 256, seed=1)
    warm_data = codec.encode_full(warm, args.quality, args.refs).data
    codec.decode_pixels(warm_data)
    sync()
    base = _status_kib("VmRSS")
    resettable = _reset_peak()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    enc_times: list[float] = []
    enc_cpu: list[float] = []
    data = b""
    while len(enc_times) < args.repeat and (not enc_times or sum(enc_times) < args.budget):
        t, c = time.perf_counter(), time.process_time()
        data = codec.encode_full(pixels, args.quality, args.refs).data
        sync()
        enc_times.append(time.perf_counter() - t)
        enc_cpu.append(time.process_time() - c)
    enc_peak = _status_kib("VmHWM")
    enc_gpu = torch.cuda.max_memory_allocated() if cuda else None
    _reset_peak()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    dec_times: list[float] = []
    dec_cpu: list[float] = []
    while len(dec_times) < args.repeat and (not dec_times or sum(dec_times) < args.budget):
        t, c = time.perf_counter(), time.process_time()
        out, _ = codec.decode_pixels(data)
        sync()
        dec_times.append(time.perf_counter() - t)
        dec_cpu.append(time.process_time() - c)
    dec_peak = _status_kib("VmHWM")
    dec_gpu = torch.cuda.max_memory_allocated() if cuda else None
    exact_times: list[float] = []
    if args.exact:
        codec.decode_pixels(warm_data, exact=True)
        while len(exact_times) < args.repeat and (not exact_times or sum(exact_times) < args.budget):
            t = time.perf_counter()
            codec.decode_pixels(data, exact=True)
            sync()
            exact_times.append(time.perf_counter() - t)
    assert out.shape == pixels.shape
    mib = 1 / 1024
    return {
        "width": w, "height": h, "megapixels": w * h / 1e6, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
        "encode_s": statistics.median(enc_times), "decode_s": statistics.median(dec_times),
        "decode_exact_s": statistics.median(exact_times) if exact_times else None, "decode_exact_runs": exact_times,
        "encode_runs": enc_times, "decode_runs": dec_times,
        "encode_cpu_s": statistics.median(enc_cpu), "decode_cpu_s": statistics.median(dec_cpu),
        "base_rss_mib": base * mib if base else None,
        "encode_peak_rss_mib": enc_peak * mib if enc_peak else None,
        "decode_peak_rss_mib": dec_peak * mib if dec_peak else None,
        "peak_reset": resettable,
        "encode_peak_gpu_mib": enc_gpu / 2**20 if enc_gpu is not None else None,
        "decode_peak_gpu_mib": dec_gpu / 2**20 if dec_gpu is not None else None,
        "device": str(codec.device), "model_id": codec.model_id.hex(), "model_config": codec.model.cfg.name,
        "refs_used": len(read_info(data)["references"]),
        "torch_threads": torch.get_num_threads(), "blas": blas_here(),
        "gpu": torch.cuda.get_device_name() if cuda else None,
    }


def _loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# -- driver -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--model", help="weights file (default: the shipped model, or $CLC_MODEL)")
    p.add_argument("--dict", help="reference dictionary (default: the shipped one if it fits; 'none' disables)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH list (default: {DEFAULT_SIZES})")
    p.add_argument("--quality", type=float, default=3.0, help="quality (default 3)")
    p.add_argument("--refs", type=int, default=3, help="references M (default 3; used only with a dictionary)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per size and direction (default 3)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="stop repeating a size once its runs took this many seconds (default 60)")
    p.add_argument("--image", help="a photo to crop/tile to each size instead of the synthetic pattern")
    p.add_argument("--exact", action="store_true", help="also time the bit-exact decode (decode_pixels(exact=True))")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--timeout", type=float, default=3600, help="per-size worker timeout in seconds")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(120, Console().width))
    errc = Console(stderr=True, highlight=False)
    rows = []
    for w, h in parse_sizes(args.sizes):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--size", f"{w}x{h}",
               "--quality", str(args.quality), "--refs", str(args.refs), "--repeat", str(args.repeat),
               "--budget", str(args.budget), "--device", args.device]
        for opt in ("model", "dict", "image"):
            if getattr(args, opt):
                cmd += [f"--{opt}", str(getattr(args, opt))]
        if args.exact:
            cmd.append("--exact")
        errc.print(f"{w}x{h} ...", markup=False)
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            errc.print(f"  {w}x{h}: timed out after {args.timeout:g} s", markup=False)
            rows.append({"width": w, "height": h, "error": "timeout"})
            continue
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["failed"])[-1]
            errc.print(f"  {w}x{h}: {last}", markup=False)
            rows.append({"width": w, "height": h, "error": last})
            if "weights not found" in last or "No such file" in last:
                return 1
            continue
        row = json.loads(r.stdout.strip().splitlines()[-1])
        exact = f", exact decode {row['decode_exact_s']:.3f} s" if row.get("decode_exact_s") else ""
        errc.print(f"  encode {row['encode_s']:.3f} s ({row['encode_cpu_s']:.2f} CPU s), "
                   f"decode {row['decode_s']:.3f} s ({row['decode_cpu_s']:.2f} CPU s){exact} "
                   f"({time.perf_counter() - t:.0f} s with process start)", markup=False)
        rows.append(row)

    ok = [r for r in rows if "error" not in r]
    first = ok[0] if ok else {}
    gpu = any(r.get("encode_peak_gpu_mib") for r in ok)
    title = (f"clc speed: model {first.get('model_id', '?')} ({first.get('model_config', '?')}), "
             f"{first.get('device', args.device)}, {first.get('torch_threads', '?')} threads, "
             f"quality {args.quality:g}, M={first.get('refs_used', 0)}; BLAS {first.get('blas', '?')}")
    t = Table(title=title, title_justify="left",
              caption="s: median wall seconds; CPU s: process CPU seconds (all threads); MP/s from wall time; memory "
                      "in MiB: RSS with the model loaded, peak RSS while encoding and while decoding"
                      + (", peak CUDA memory allocated" if gpu else ""), caption_justify="left")
    exact = any(r.get("decode_exact_s") for r in ok)
    cols = ["size", "MP", "bpp", "enc s", "dec s"] + (["exact dec s"] if exact else []) + [
        "enc CPU s", "dec CPU s", "enc MP/s", "dec MP/s", "RSS", "enc peak", "dec peak"] + (
        ["enc GPU", "dec GPU"] if gpu else [])
    for c in cols:
        t.add_column(c, justify="right", no_wrap=True)
    for r in rows:
        if "error" in r:
            t.add_row(f"{r['width']}x{r['height']}", *(["-"] * (len(cols) - 2)), r["error"][:40])
            continue
        cells = [f"{r['width']}x{r['height']}", f"{r['megapixels']:.2f}", f"{r['bpp']:.3f}", f"{r['encode_s']:.3f}",
                 f"{r['decode_s']:.3f}"] + ([f"{r['decode_exact_s']:.3f}"] if exact else []) + [
                 f"{r['encode_cpu_s']:.2f}", f"{r['decode_cpu_s']:.2f}",
                 f"{r['megapixels'] / r['encode_s']:.3f}",
                 f"{r['megapixels'] / r['decode_s']:.3f}", f"{r['base_rss_mib']:.0f}",
                 f"{r['encode_peak_rss_mib']:.0f}", f"{r['decode_peak_rss_mib']:.0f}"]
        if gpu:
            cells += [f"{r['encode_peak_gpu_mib']:.0f}", f"{r['decode_peak_gpu_mib']:.0f}"]
        t.add_row(*cells)
    console.print(t)
    if args.json:
        from importlib.metadata import version

        blob = {"command": " ".join([Path(sys.argv[0]).name if argv is None else "speed.py", *(argv or sys.argv[1:])]),
                "settings": {k: getattr(args, k) for k in ("model", "dict", "device", "quality", "refs", "repeat",
                                                           "budget", "image", "exact")},
                "environment": {"python": platform.python_version(), "torch": version("torch"),
                                "platform": platform.platform(), "cpu_count": os.cpu_count(),
                                "processor": platform.processor(), "loadavg_at_end": _loadavg()},
                "method": __doc__.split("\n\n", 2)[2].strip(),
                "results": rows}
        Path(args.json).write_text(json.dumps(blob, indent=1) + "\n")
        errc.print(f"wrote {args.json}", markup=False)
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
