#!/usr/bin/env python
"""What a user waits for: CLI start-up, one-shot encode/decode, model loading, in-process coding at Kodak size.

    python benchmarks/latency.py                                  # shipped model, 768x512, M = 3, quality 3
    python benchmarks/latency.py --json latency_cpu.json
    python benchmarks/latency.py --model tiny.pt --size 64x64 --repeat 1 --cli-repeat 0   # smoke run

Measured, in this order, on the same machine in one run (so ratios compare like with like):
* load: seconds to construct `Codec()` (model weights + default dictionary) in a fresh process, and the parts:
  reading the weights file, building the model, the model id, the dictionary;
* in-process (one loaded Codec, after a warm-up): median wall seconds of encode_full (pixels -> .clc bytes,
  retrieval included) and of decode_pixels with the default (fast) synthesis and with exact=True; encode +
  decode is the sum of the medians; and the torch-free decoder's (clccodec.LiteDecoder: the numpy backend)
  decode, first call and median, with its load in a fresh process;
* the torch-free encoder (clccodec.Encoder on a CPU: the numpy encoder at effort 0), median, and whether its
  file is the torch Codec's, byte for byte;
* one-shot CLI: median wall seconds of whole `clc` processes (python start, imports, model load, coding, file
  writing): `--help`, `--version`, `encode --help`, `info FILE.clc`, `encode`, `decode`, `decode --exact`;
  and which heavy modules (torch, compressai, faiss, sklearn) each light command, `encode` and `decode` imported;
* the yardstick: AVIF 4:4:4 (libavif through Pillow, speed 6, quality 60) encode and decode, in process and as
  whole processes, with our one-shot times over AVIF's;
* with --large WxH (e.g. 4000x3000): one-shot `clc encode` and `clc decode` of a pattern that size (default
  options), wall seconds and the process's peak RSS, beside AVIF's whole processes on the same image.
The image is benchmarks/common.py's synthetic photo-like pattern (or --image, cropped/tiled to the size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# compressai counts when its Python side loads: the torch-free decoder and the CLI's light commands use only its
# rANS extension (the CLI's start-up, cli/startup.py, keeps compressai's __init__ from running)
HEAVY = ("torch", "compressai.entropy_models", "faiss", "sklearn")
PROBE = ("import runpy, sys, json; sys.argv = ['clc'] + json.loads(sys.argv[1]); "
         "code = 0\ntry:\n    runpy.run_module('clccodec', run_name='__main__')\nexcept SystemExit as e:\n"
         "    code = e.code or 0\n"
         "sys.stderr.write('HEAVY ' + json.dumps(sorted(m for m in %r if m in sys.modules)) + '\\n')")


def median_time(fn, repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs


def load_breakdown(model: str | None) -> dict:
    """Fresh process: where Codec() spends its time."""
    code = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import clccodec
from clccodec import api
t2 = time.perf_counter()
c = clccodec.Codec(sys.argv[1] or None, device="cpu")
t3 = time.perf_counter()
print(json.dumps({"import_torch_s": t1 - t0, "import_clccodec_s": t2 - t1, "codec_load_s": t3 - t2,
                  "model_id": c.model.model_id.hex(), "dictionary": c.dictionary is not None}))
"""
    r = subprocess.run([sys.executable, "-c", code, model or ""], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


# fresh process: the torch-free decoder's imports and load, and its first decode of a file
LITE_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from clccodec import LiteDecoder
t1 = time.perf_counter()
d = LiteDecoder(sys.argv[1] or None)
t2 = time.perf_counter()
d.decode_full(open(sys.argv[2], "rb").read())
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_decode_s": t3 - t2, "torch": "torch" in sys.modules}))
"""


def cli_wall(args: list[str], repeat: int, env: dict) -> tuple[float, list[float]]:
    def once() -> None:
        r = subprocess.run([sys.executable, "-m", "clccodec", *args], capture_output=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"clc {' '.join(args)} failed: {r.stderr.decode().strip()[-300:]}")

    return median_time(once, repeat)


def heavy_imports(args: list[str], env: dict) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), json.dumps(args)], capture_output=True, text=True,
                       env=env)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("HEAVY ")]
    return json.loads(line[-1][6:]) if line else ["?"]


AVIF_OPTIONS = {"quality": 60, "subsampling": "4:4:4", "speed": 6}
AVIF_PROCESS = """
import sys
from PIL import Image
im = Image.open(sys.argv[2])
if sys.argv[1] == "encode":
    im.save(sys.argv[3], quality=60, subsampling="4:4:4", speed=6)
else:
    im.load()
    im.save(sys.argv[3])
"""


# runs a command's Python code and reports the process's own peak RSS when it exits (its VmHWM: a child's
# ru_maxrss would include the parent's RSS at the fork)
PEAK_WRAPPER = """
import atexit, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_KIB " + line.split()[1] + "\\n")
atexit.register(peak)
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__")
else:
    code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
    exec(compile(code, "<command>", "exec"), {"__name__": "__main__"})
"""


def process_run(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole `python ARGS` process (ARGS: -m MODULE ... or -c CODE ...)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *args], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    err = r.stderr.decode()
    if r.returncode != 0:
        raise RuntimeError(f"python {' '.join(args[:5])} failed: {err.strip()[-300:]}")
    peak = [int(line.split()[1]) for line in err.splitlines() if line.startswith("PEAK_KIB ")]
    return wall, peak[-1] / 1024


def large_oneshot(size: str, quality: float, repeat: int, env: dict) -> dict:
    """One-shot `clc encode` / `clc decode` of a large synthetic image with default options, and AVIF's whole
    processes on the same image: median wall seconds and the largest peak RSS of each."""
    from PIL import Image

    from common import parse_sizes, synthetic

    w, h = parse_sizes(size)[0]
    out: dict = {"size": f"{w}x{h}"}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        Image.fromarray(synthetic(h, w)).save(t / "big.png", compress_level=1)
        commands = {
            "encode": ["-m", "clccodec", "encode", str(t / "big.png"), "-o", str(t / "big.clc"), "-f", "-q",
                       f"{quality:g}"],
            "decode": ["-m", "clccodec", "decode", str(t / "big.clc"), "-o", str(t / "dec.png"), "-f"],
            "avif_encode": ["-c", AVIF_PROCESS, "encode", str(t / "big.png"), str(t / "big.avif")],
            "avif_decode": ["-c", AVIF_PROCESS, "decode", str(t / "big.avif"), str(t / "a.png")],
        }
        for name, cmd in commands.items():
            runs = [process_run(cmd, env) for _ in range(repeat)]
            out[name] = {"wall_s": statistics.median(r[0] for r in runs), "peak_mib": max(r[1] for r in runs),
                         "runs_s": [r[0] for r in runs]}
        out["bytes"] = (t / "big.clc").stat().st_size
    return out


def avif_times(pixels, repeat: int, process_repeat: int) -> dict:
    """AVIF 4:4:4 through Pillow: in-process encode and decode medians, and whole processes (python, Pillow,
    the file read and written, as a one-shot `clc` does)."""
    import io

    from PIL import Image

    im = Image.fromarray(pixels)

    def enc() -> bytes:
        buf = io.BytesIO()
        im.save(buf, "AVIF", **AVIF_OPTIONS)
        return buf.getvalue()

    data = enc()
    out: dict = {"bytes": len(data)}
    out["encode_s"], _ = median_time(enc, repeat)
    out["decode_s"], _ = median_time(lambda: Image.open(io.BytesIO(data)).load(), repeat)
    with tempfile.TemporaryDirectory() as tmp:
        src, avif = Path(tmp) / "a.png", Path(tmp) / "a.avif"
        im.save(src)
        avif.write_bytes(data)
        for name, a, b in (("encode", src, Path(tmp) / "e.avif"), ("decode", avif, Path(tmp) / "d.png")):
            out[f"process_{name}_s"], _ = median_time(lambda: subprocess.run(
                [sys.executable, "-c", AVIF_PROCESS, name, str(a), str(b)], check=True), process_repeat)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="weights file (default: the shipped model)")
    p.add_argument("--size", default="768x512")
    p.add_argument("--quality", type=float, default=3.0)
    p.add_argument("--refs", type=int, default=3)
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each in-process measurement")
    p.add_argument("--cli-repeat", type=int, default=3, help="timed runs of each CLI command (0: no CLI runs)")
    p.add_argument("--image", help="a photo to crop/tile to the size instead of the synthetic pattern")
    p.add_argument("--large", help="also time one-shot encode and decode of a WxH image (e.g. 4000x3000)")
    p.add_argument("--large-repeat", type=int, default=1, help="runs of each large one-shot command (default 1)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    sys.path.insert(0, str(HERE))
    import numpy as np
    from PIL import Image
    from common import blas_here, blas_in_clc, from_photo, parse_sizes, synthetic

    import clccodec

    w, h = parse_sizes(args.size)[0]
    pixels = from_photo(args.image, h, w) if args.image else synthetic(h, w)
    res: dict = {"size": f"{w}x{h}", "quality": args.quality, "refs": args.refs}

    res["load"] = load_breakdown(args.model)
    codec = clccodec.Codec(args.model, device="cpu")
    codec.decode_pixels(codec.encode_full(synthetic(256, 256, seed=1), args.quality, args.refs).data)  # warm-up
    data = codec.encode_full(pixels, args.quality, args.refs).data
    res["refs_used"] = len(clccodec.read_info(data)["references"])
    res["bytes"] = len(data)
    res["encode_s"], res["encode_runs"] = median_time(lambda: codec.encode_full(pixels, args.quality, args.refs),
                                                      args.repeat)
    res["decode_s"], res["decode_runs"] = median_time(lambda: codec.decode_pixels(data), args.repeat)
    res["decode_exact_s"], res["decode_exact_runs"] = median_time(lambda: codec.decode_pixels(data, exact=True),
                                                                  args.repeat)
    fast, _ = codec.decode_pixels(data)
    exact, _ = codec.decode_pixels(data, exact=True)
    d = fast.astype(np.int16) - exact.astype(np.int16)
    res["fast_vs_exact_max_abs"] = int(np.abs(d).max())
    res["fast_vs_exact_differing_pixels"] = float((d != 0).mean())
    res["encode_plus_decode_s"] = res["encode_s"] + res["decode_s"]
    lite = clccodec.LiteDecoder(args.model)
    res["decode_lite_s"], res["decode_lite_runs"] = median_time(lambda: lite.decode_full(data), args.repeat)
    d = lite.decode_full(data).pixels.astype(np.int16) - exact
    res["lite_vs_exact_max_abs"] = int(np.abs(d).max())
    with tempfile.NamedTemporaryFile(suffix=".clc") as f:
        f.write(data)
        f.flush()
        r = subprocess.run([sys.executable, "-c", LITE_PROBE, args.model or "", f.name],
                           capture_output=True, text=True, check=True)
    res["lite_fresh_process"] = json.loads(r.stdout.strip().splitlines()[-1])
    res["exact_over_fast"] = res["decode_exact_s"] / res["decode_s"]
    encoder = clccodec.Encoder(args.model, device="cpu")
    res["encode_numpy_s"], res["encode_numpy_runs"] = median_time(
        lambda: encoder.encode_full(pixels, args.quality, args.refs), args.repeat)
    res["numpy_file_is_torchs"] = encoder.encode_full(pixels, args.quality, args.refs).data == data
    res["avif"] = avif_times(pixels, args.repeat, max(1, args.cli_repeat))

    env = dict(os.environ)
    if args.model:
        env["CLC_MODEL"] = str(Path(args.model).resolve())
    cli: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, clc = Path(tmp) / "img.png", Path(tmp) / "img.clc"
        Image.fromarray(pixels).save(src)
        clc.write_bytes(data)
        commands = {
            "--help": ["--help"], "--version": ["--version"], "encode --help": ["encode", "--help"],
            "info FILE.clc": ["info", str(clc)],
            "encode": ["encode", str(src), "-o", str(Path(tmp) / "e.clc"), "-f", "-q", f"{args.quality:g}",
                       "--refs", str(args.refs), "--device", "cpu"],
            "decode": ["decode", str(clc), "-o", str(Path(tmp) / "d.png"), "-f", "--device", "cpu"],
        }
        commands["decode --exact"] = commands["decode"] + ["--exact"]
        for name, cmd in commands.items() if args.cli_repeat > 0 else ():
            t, runs = cli_wall(cmd, args.cli_repeat, env)
            cli[name] = {"wall_s": t, "runs": runs}
            if name in ("--help", "--version", "encode --help", "info FILE.clc", "encode", "decode"):
                cli[name]["heavy_imports"] = heavy_imports(cmd, env)
    res["cli"] = cli
    if args.large:
        res["large"] = large_oneshot(args.large, args.quality, args.large_repeat, env)
    res["blas"] = {"in_process": blas_here(), "clc": blas_in_clc()}
    res["environment"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpu_count": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())}
    res["command"] = " ".join(["benchmarks/latency.py", *(argv if argv is not None else sys.argv[1:])])

    print(f"clc latency: {w}x{h}, quality {args.quality:g}, M={res['refs_used']}, model {res['load']['model_id']}, "
          f"{os.cpu_count()} CPUs, load average at end {res['environment']['loadavg_at_end'][0]:.2f}")
    print(f"  BLAS in process: {res['blas']['in_process']}; in clc: {res['blas']['clc']}")
    ld = res["load"]
    print(f"  load (fresh process): import torch {ld['import_torch_s']:.2f} s, import clccodec "
          f"{ld['import_clccodec_s']:.2f} s, Codec() {ld['codec_load_s']:.2f} s")
    print(f"  in-process: encode {res['encode_s']:.3f} s, decode (default) {res['decode_s']:.3f} s, decode exact "
          f"{res['decode_exact_s']:.3f} s; encode + decode {res['encode_plus_decode_s']:.3f} s; exact / default "
          f"{res['exact_over_fast']:.2f}x")
    print(f"  torch-free encoder: encode {res['encode_numpy_s']:.3f} s, the torch Codec's bytes: "
          f"{res['numpy_file_is_torchs']}")
    av = res["avif"]
    print(f"  AVIF 4:4:4 (Pillow, speed 6, q 60): in process encode {av['encode_s']:.3f} s, decode "
          f"{av['decode_s']:.4f} s; whole process encode {av['process_encode_s']:.3f} s, decode "
          f"{av['process_decode_s']:.3f} s")
    lf = res["lite_fresh_process"]
    print(f"  torch-free decoder: decode {res['decode_lite_s']:.3f} s (max |diff| to exact "
          f"{res['lite_vs_exact_max_abs']}); fresh process: import {lf['import_s']:.2f} s, load "
          f"{lf['load_s']:.2f} s, first decode {lf['first_decode_s']:.2f} s, torch imported: {lf['torch']}")
    print(f"  fast vs exact pixels: max |diff| {res['fast_vs_exact_max_abs']}, "
          f"{100 * res['fast_vs_exact_differing_pixels']:.3f} % of samples differ")
    for name, c in cli.items():
        heavy = f"  heavy imports: {', '.join(c['heavy_imports']) or 'none'}" if "heavy_imports" in c else ""
        versus = {"encode": "process_encode_s", "decode": "process_decode_s"}.get(name)
        ratio = f"  ({c['wall_s'] / av[versus]:.1f}x AVIF's process)" if versus else ""
        print(f"  clc {name:<16} {c['wall_s']:.3f} s{ratio}{heavy}")
    if args.large:
        lg = res["large"]
        print(f"  {lg['size']} one-shot (default options, {lg['bytes']} bytes):")
        for name, c in lg.items():
            if isinstance(c, dict):
                print(f"    {name:<12} {c['wall_s']:7.2f} s  peak {c['peak_mib']:7.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
