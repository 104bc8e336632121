#!/usr/bin/env python
"""Before/after on one machine: two source trees of clccodec measured in alternating fresh processes.

    git archive OLD_COMMIT src | tar -x -C /tmp/before       # an older tree (+ its models/ and dictionaries/)
    python benchmarks/compare.py --before /tmp/before/src --after src --json compare_cpu.json
    python benchmarks/compare.py --before src --rounds 1 --repeat 1 --size 64x64 --model tiny.pt --no-cli  # smoke

On a machine whose load changes (other jobs), numbers measured minutes apart do not compare; here every round
runs the same measurement for `before` and then for `after`, and the table shows the medians over the rounds.
Per round and tree: `clc --help` and one-shot `clc decode` / `clc encode` wall seconds (whole processes), and
in one process after a warm-up: Codec() load, encode_full and decode_pixels at --size (median of --repeat runs),
plus decode_pixels(exact=True) where the tree has it. Same image, quality and M as benchmarks/latency.py.
Each tree uses its own shipped model and default dictionary, or --model / --dict for both ($CLC_MODEL /
$CLC_DICTIONARY).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INPROCESS = r"""
import inspect, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from common import parse_sizes, synthetic
t = time.perf_counter()
import clccodec
c = clccodec.Codec(device="cpu")
load = time.perf_counter() - t
w, h = parse_sizes(sys.argv[2])[0]
q, m, n = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
img = synthetic(h, w)
data = c.encode(img, q, m)
c.decode_pixels(data)
exact = "exact" in inspect.signature(getattr(c, "decode_full", c.decode_pixels)).parameters
def med(f):
    runs = []
    for _ in range(n):
        t = time.perf_counter(); f(); runs.append(time.perf_counter() - t)
    return statistics.median(runs)
out = {"load_s": load, "encode_s": med(lambda: c.encode(img, q, m)), "decode_s": med(lambda: c.decode_pixels(data)),
       "bytes": len(data)}
if exact:
    c.decode_pixels(data, exact=True)
    out["decode_exact_s"] = med(lambda: c.decode_pixels(data, exact=True))
print(json.dumps(out))
"""


def wall(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed: {r.stderr.decode().strip()[-300:]}")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="src/ folder of the older tree")
    p.add_argument("--after", default=str(HERE.parent / "src"), help="src/ folder of the newer tree (default: this)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3, help="timed in-process runs per round")
    p.add_argument("--size", default="768x512")
    p.add_argument("--quality", type=float, default=3.0)
    p.add_argument("--refs", type=int, default=3)
    p.add_argument("--model", help="weights file for both trees (default: each tree's shipped model)")
    p.add_argument("--dict", help="dictionary for both trees ('none': no dictionary; default: each tree's own)")
    p.add_argument("--no-cli", action="store_true", help="skip the one-shot `clc` runs (library timings only)")
    p.add_argument("--json")
    args = p.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from PIL import Image
    from common import parse_sizes, synthetic

    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    w, h = parse_sizes(args.size)[0]
    rows: dict[str, list[dict]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        png, clc = Path(tmp) / "img.png", Path(tmp) / "img.clc"
        Image.fromarray(synthetic(h, w)).save(png)
        for r in range(args.rounds):
            for name, src in trees.items():
                env = {k: v for k, v in os.environ.items() if k not in ("CLC_MODEL", "CLC_DICTIONARY")}
                env["PYTHONPATH"] = src
                if args.model:
                    env["CLC_MODEL"] = str(Path(args.model).resolve())
                if args.dict:
                    # 'none': a default dictionary that does not exist, i.e. no dictionary
                    env["CLC_DICTIONARY"] = str(Path(tmp, "absent.clcdict") if args.dict == "none"
                                                else Path(args.dict).resolve())
                clc_cmd = [sys.executable, "-m", "clccodec"]
                proc = subprocess.run([sys.executable, "-c", INPROCESS, str(HERE), args.size, str(args.quality),
                                       str(args.refs), str(args.repeat)], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: the in-process run failed: {proc.stderr.strip()[-600:]}")
                res = json.loads(proc.stdout.splitlines()[-1])
                if not args.no_cli:
                    res["help_s"] = wall(clc_cmd + ["--help"], env)
                    res["cli_encode_s"] = wall(clc_cmd + ["encode", str(png), "-o", str(clc), "-f", "-q",
                                                          f"{args.quality:g}", "--refs", str(args.refs), "--device",
                                                          "cpu"], env)
                    res["cli_decode_s"] = wall(clc_cmd + ["decode", str(clc), "-o", f"{tmp}/out.png", "-f",
                                                          "--device", "cpu"], env)
                res["loadavg"] = os.getloadavg()[0]
                rows[name].append(res)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items() if k != "bytes"),
                      file=sys.stderr, flush=True)
    keys = ["help_s", "cli_encode_s", "cli_decode_s", "load_s", "encode_s", "decode_s", "decode_exact_s"]
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys if all(k in r for r in rs)}
           for name, rs in rows.items()}
    for name in med:
        med[name]["encode_plus_decode_s"] = med[name]["encode_s"] + med[name]["decode_s"]
    labels = {"help_s": "clc --help", "cli_encode_s": "one-shot clc encode", "cli_decode_s": "one-shot clc decode",
              "load_s": "import + Codec() (model, dictionary)", "encode_s": "in-process encode",
              "decode_s": "in-process decode (default)", "decode_exact_s": "in-process decode, exact",
              "encode_plus_decode_s": "in-process encode + decode"}
    loads = [r["loadavg"] for rs in rows.values() for r in rs]
    print(f"clc before/after: {w}x{h}, quality {args.quality:g}, M={args.refs}, {args.rounds} alternating rounds, "
          f"{os.cpu_count()} CPUs, load average {min(loads):.1f}..{max(loads):.1f}; medians in seconds")
    print(f"| {'':<38} | before | after | after/before |")
    print(f"|{'-' * 40}|-------:|------:|-------------:|")
    for k, label in labels.items():
        b, a = med["before"].get(k), med["after"].get(k)
        cells = [f"{b:.2f}" if b is not None else "-", f"{a:.2f}" if a is not None else "-",
                 f"{a / b:.2f}" if a is not None and b is not None else "-"]
        print(f"| {label:<38} | {cells[0]:>6} | {cells[1]:>5} | {cells[2]:>12} |")
    if "decode_exact_s" in med["after"]:
        print(f"after: exact decode / default decode = {med['after']['decode_exact_s'] / med['after']['decode_s']:.2f}")
    same = len({r["bytes"] for rs in rows.values() for r in rs}) == 1
    print(f"the two trees wrote {'the same' if same else 'DIFFERENT'} number of bytes")
    if args.json:
        blob = {"command": " ".join(["benchmarks/compare.py", *(argv if argv is not None else sys.argv[1:])]),
                "trees": trees, "rounds": rows, "medians": med}
        Path(args.json).write_text(json.dumps(blob, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
