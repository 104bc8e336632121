"""Fuzz every reader of untrusted bytes and count the outcomes.

    python benchmarks/fuzz.py --cases 100000 --json fuzz.json     # every reader, a tiny random model
    python benchmarks/fuzz.py --cases 300 --decode-every 10         # smoke run
    python benchmarks/fuzz.py --bomb 8000x6000                      # small files claiming a large image
    python benchmarks/fuzz.py --valid ../shared/data/kodak          # valid files are never refused

With --valid DIR, instead: every image of DIR encoded by the shipped model at qualities 0..8 (M = 3) and decoded
by both backends; any refusal is a bug of the checks (the property is the other half of the fuzzer's).

With --bomb, instead: two files made from a real 64x64 encode (shipped model) whose header claims WxH
(checksums recomputed), one with its own short strings, one whose hyper-latent string is random bytes just long
enough to pass the string check; each decoded by `clc decode` in a fresh process: seconds, peak RSS, outcome.

Readers: the .clc container (read whole or partially), the decoder itself on a sample of those files (numpy and
torch backends in turn), the block-copy section, the alpha section, .clcdict files, the image reader of `clc
encode`, and the Pillow plugin (Image.open on every case, load on a sample; Pillow's own errors count as refusals). Every case
is a valid seed mutated (bit flips, byte runs, inserts, deletes, truncations, splices of two seeds, header bytes);
half of the .clc cases get their checksums recomputed (container.reseal) so the mutation reaches the parsers
behind them. The property: a reader returns, or raises a ClcError with a one-line message. Anything else is a raw
exception; a case longer than --case-seconds is a hang. Both are counted, and the first example of each kind is
written to --out for a repro. Exit status 1 if there was any.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import synthetic  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def mutate(rng: random.Random, seeds: list[bytes], header: int = 40) -> bytes:
    data = bytearray(rng.choice(seeds))
    kind = rng.choice(["flip", "bytes", "insert", "delete", "truncate", "splice", "header"])
    if not data:
        return bytes(rng.randbytes(rng.randint(1, 16)))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        i = rng.randrange(len(data))
        data[i : i + 16] = rng.randbytes(rng.randint(1, 16))
    elif kind == "insert":
        i = rng.randint(0, len(data))
        data[i:i] = rng.randbytes(rng.randint(1, 32))
    elif kind == "delete":
        i = rng.randrange(len(data))
        del data[i : i + rng.randint(1, 32)]
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "splice":
        other = rng.choice(seeds)
        data = data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)):]
    else:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(header, len(data)))] = rng.randrange(256)
    return bytes(data)


def open_with_pillow(data: bytes, rng: random.Random) -> None:
    """Pillow's API over the plugin: open (the header), and load now and then (the decoder). Pillow's own
    documented failures (UnidentifiedImageError, OSError) count as refusals, anything else is raw."""
    from PIL import Image, UnidentifiedImageError

    import clccodec.pillow  # noqa: F401
    from clccodec.errors import FormatError

    try:
        im = Image.open(io.BytesIO(data), formats=["CLC"])
        if rng.random() < 0.05:
            im.load()
    except (UnidentifiedImageError, OSError) as e:
        raise FormatError(f"Pillow: {type(e).__name__}") from None


def make_seeds(work: Path) -> dict:
    """A tiny random model, a dictionary with pictures, and valid inputs for every reader."""
    import torch
    from PIL import Image

    from clccodec import Codec
    from clccodec.dictionary.build import BuildOptions, build_dictionary
    from clccodec.format import container, copysection
    from clccodec.format.alpha import pack_alpha
    from clccodec.model.config import TINY
    from clccodec.model.network import CLCModel
    from clccodec.model.weights import load_weights, prepare_for_export, save_weights

    torch.manual_seed(0)
    model = CLCModel(TINY)
    prepare_for_export(model)
    model_path = work / "tiny.pt"
    save_weights(model, model_path)
    photos = work / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(synthetic(96, 128, seed=10 + i)).save(photos / f"p{i}.png")
    built, _ = build_dictionary(photos, load_weights(model_path), BuildOptions(clusters=6, crop=64, batch=8,
                                                                                 pictures=True))
    dict_path = work / "fuzz.clcdict"
    built.save(dict_path)
    codec = Codec(model_path, dict_path, "cpu")
    clc = []
    for (h, w), q, refs, gray in [((48, 64), 1.0, 0, False), ((70, 90), 4.5, 2, False), ((64, 64), 8.0, 3, True)]:
        img = synthetic(h, w, seed=h)
        clc.append(codec.encode(img[:, :, 0] if gray else img, quality=q, refs=refs))
    clc += [container.pack(container.unpack(d), version=1) for d in clc if not container.unpack(d).block_copy]
    clc.append(codec.encode(synthetic(40, 72, seed=3), quality=3, refs=1, slices=1))  # a preview
    mask = np.full((40, 56), 255, np.uint8)
    mask[8:30, 10:40] = np.arange(30, dtype=np.uint8) * 8
    clc.append(codec.encode(np.dstack([synthetic(40, 56, seed=4), mask]), quality=2, refs=0))  # alpha
    near = codec.encode_full(synthetic(40, 56, seed=6), quality=2, refs=0, near_lossless=1)
    clc.append(near.data)  # a residual
    base = codec.encode_full(synthetic(40, 56, seed=6), quality=2, refs=0, reconstruct=True, exact=True).reconstruction
    rng = np.random.default_rng(0)
    sections = []
    for pictures in (1, 2):
        modes = rng.integers(0, 2 * pictures + 1, (5, 7)).astype(np.uint8)  # copy and detail blocks
        ys, xs = rng.integers(0, 40, (5, 7)), rng.integers(0, 60, (5, 7))
        sections.append(copysection.pack(copysection.BlockCopy(16, list(range(pictures)), modes, ys, xs,
                                                               quarter=pictures == 2)))  # and quarter pixels
    images = []
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "BMP"):
        buf = io.BytesIO()
        Image.fromarray(synthetic(24, 32, seed=5)).save(buf, fmt)
        images.append(buf.getvalue())
    return {"model": model_path, "dictionary": dict_path, "clc": clc, "copy": sections,
            "clcdict": [dict_path.read_bytes()], "image": images, "alpha": [pack_alpha(mask), pack_alpha(mask.T)],
            "residual": [container.unpack(near.data).residual], "residual_base": base}


DECODE_AND_MEASURE = """
import re, runpy, sys
sys.argv = ["clc", "decode", sys.argv[1], "-o", sys.argv[2], "-f", "--quiet"]
try:
    runpy.run_module("clccodec", run_name="__main__")
finally:  # this process's own peak (ru_maxrss would count the parent's pages at the fork)
    hwm = re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read())
    print(f"peak RSS {int(hwm.group(1)) / 1024:.0f} MiB", file=sys.stderr)
"""


def bombs(size: str) -> None:
    import subprocess

    import clccodec
    from clccodec.decoding.numpy_backend import NumpyModel
    from clccodec.defaults import default_model_path
    from clccodec.format import container

    w, h = (int(v) for v in size.lower().split("x"))
    f = container.unpack(clccodec.encode(synthetic(64, 64), quality=3, refs=0, device="cpu"))
    f.width, f.height = w, h
    small = container.pack(f)
    model = NumpyModel.load(default_model_path())
    positions = -(-h // 64) * -(-w // 64)
    rng = np.random.default_rng(1)

    def random_string(bits: float) -> bytes:  # rANS strings are whole 32-bit words
        return rng.integers(0, 256, 4 * (int(bits / 8) // 4 + 256), dtype=np.uint8).tobytes()

    f.hyper = random_string(float(model.z_coder.min_bits.sum()) * positions)
    f.slices = [random_string(float(model.y_coder.min_bits.min()) * c * 16 * positions) for c in model.cfg.slices]
    padded = container.pack(f)
    with tempfile.TemporaryDirectory() as tmp:
        for label, data in (("its own strings", small), ("a hyper-latent just long enough", padded)):
            src = Path(tmp, "bomb.clc")
            src.write_bytes(data)
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", DECODE_AND_MEASURE, str(src), str(Path(tmp, "b.png"))],
                               capture_output=True)
            lines = r.stderr.decode().strip().splitlines()
            print(f"{len(data):>7,} bytes claiming {w}x{h} ({label}): exit {r.returncode} after "
                  f"{time.perf_counter() - t:.2f} s, {lines[-1]}: {lines[0][:150] if len(lines) > 1 else ''}")


def valid(folder: str, every: int = 1) -> None:
    from clccodec import Codec
    from clccodec.decoding.decoder import LiteDecoder
    from clccodec.errors import ClcError
    from clccodec.io.images import list_images

    codec, lite = Codec(device="cpu"), LiteDecoder()
    images, refused, files = list_images([Path(folder)])[::every], [], 0
    t = time.perf_counter()
    for path in images:
        for q in range(9):
            data = codec.encode(str(path), quality=float(q))
            files += 1
            for name, dec in (("numpy", lite), ("torch", codec)):
                try:
                    dec.decode_full(data)
                except ClcError as e:
                    refused.append(f"{path.name} q{q} {name}: {e}")
            print(f"{path.name} q{q}: {len(data):,} bytes, checked with both backends", flush=True)
    print(f"{files} valid files ({len(images)} images x qualities 0..8), decoded by both backends in "
          f"{time.perf_counter() - t:.0f} s: {len(refused)} refused")
    for line in refused:
        print("REFUSED", line)
    sys.exit(1 if refused else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="cases in all, spread over the readers")
    ap.add_argument("--decode-every", type=int, default=20, help="decode every Nth .clc case in full")
    ap.add_argument("--case-seconds", type=float, default=30.0, help="a case longer than this is a hang")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the first example of every failure")
    ap.add_argument("--json", default=None)
    ap.add_argument("--bomb", default=None, metavar="WxH", help="time small files claiming this size instead")
    ap.add_argument("--valid", default=None, metavar="DIR", help="check that no valid file of DIR's images is refused")
    ap.add_argument("--every", type=int, default=1, help="with --valid: every Nth image only")
    args = ap.parse_args()
    if args.bomb:
        bombs(args.bomb)
        return
    if args.valid:
        valid(args.valid, args.every)
        return

    from clccodec import Codec
    from clccodec.decoding.decoder import LiteDecoder
    from clccodec.errors import ClcError
    from clccodec.format import clcdict, container, copysection
    from clccodec.format.alpha import unpack_alpha
    from clccodec.model.residual import apply_residual
    from clccodec.io.images import load_image

    with tempfile.TemporaryDirectory() as tmp:
        seeds = make_seeds(Path(tmp))
        decoders = [LiteDecoder(seeds["model"], seeds["dictionary"]), Codec(seeds["model"], seeds["dictionary"], "cpu")]
        os.environ.update(CLC_MODEL=str(seeds["model"]), CLC_DICTIONARY=str(seeds["dictionary"]))  # (the plugin's)
        readers = {
            "container": (seeds["clc"], lambda d, r: container.unpack(d, partial=r.random() < 0.5)),
            "copy section": (seeds["copy"], lambda d, r: copysection.unpack(d, 7 * 16 + r.randrange(16), 5 * 16)),
            "clcdict": (seeds["clcdict"], lambda d, r: clcdict.unpack(d, "fuzz.clcdict")),
            "image": (seeds["image"], lambda d, r: load_image(d)),
            "alpha section": (seeds["alpha"], lambda d, r: unpack_alpha(d, r.choice((40, 56, 1)), r.choice((40, 56)))),
            "pillow": (seeds["clc"], open_with_pillow),
            "residual": (seeds["residual"], lambda d, r: apply_residual(seeds["residual_base"], d, False)),
        }
        rng = random.Random(args.seed)
        stats: dict[str, Counter] = {name: Counter() for name in [*readers, "decoder"]}
        slowest: dict[str, float] = dict.fromkeys(stats, 0.0)
        failures: dict[str, str] = {}
        signal.signal(signal.SIGALRM, _alarm)
        names = list(readers)
        t0 = time.perf_counter()
        for case in range(args.cases):
            name = names[case % len(names)]
            pool, read = readers[name]
            data = mutate(rng, pool)
            if name == "container" and rng.random() < 0.5:
                data = container.reseal(data)
            runs = [(name, read)]
            if name == "container" and (case // len(names)) % args.decode_every == 0:
                dec = decoders[(case // len(names) // args.decode_every) % 2]
                runs.append(("decoder", lambda d, r, dec=dec: dec.decode_full(d, partial=r.random() < 0.5)))
            for label, fn in runs:
                t = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, args.case_seconds)
                try:
                    fn(data, rng)
                    outcome = "read"
                except ClcError as e:
                    outcome = "refused" if str(e) and "\n" not in str(e) else "raw: multi-line ClcError"
                except Hang:
                    outcome = "hang"
                except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
                    outcome = f"raw: {type(e).__name__}"
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                stats[label][outcome] += 1
                slowest[label] = max(slowest[label], time.perf_counter() - t)
                if (outcome == "hang" or outcome.startswith("raw")) and f"{label}/{outcome}" not in failures:
                    failures[f"{label}/{outcome}"] = data.hex()
                    if args.out:
                        Path(args.out).mkdir(parents=True, exist_ok=True)
                        (Path(args.out) / f"{label}-{outcome.replace(': ', '-')}.bin".replace(" ", "_")).write_bytes(data)
        seconds = time.perf_counter() - t0

    total = sum(sum(c.values()) for c in stats.values())
    bad = {k: v for k, v in ((k, sum(n for o, n in c.items() if o == "hang" or o.startswith("raw")))
                             for k, c in stats.items()) if v}
    print(f"{total:,} cases in {seconds:.0f} s (seed {args.seed})")
    print(f"{'reader':<14}{'cases':>9}{'read':>9}{'refused':>9}{'raw':>6}{'hangs':>7}{'slowest s':>11}")
    for k, c in stats.items():
        raw = sum(n for o, n in c.items() if o.startswith("raw"))
        print(f"{k:<14}{sum(c.values()):>9,}{c['read']:>9,}{c['refused']:>9,}{raw:>6}{c['hang']:>7}{slowest[k]:>11.3f}")
    for key in failures:
        print(f"FAILURE {key}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cases": total, "seconds": round(seconds, 1), "seed": args.seed, "decode_every": args.decode_every,
            "readers": {k: {**dict(c), "slowest_s": round(slowest[k], 4)} for k, c in stats.items()},
            "failures": failures}, indent=1) + "\n")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
