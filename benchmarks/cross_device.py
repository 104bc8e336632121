#!/usr/bin/env python
"""Cross-device decoding: encode on one device, decode on another, count the images that decode identically.

    # on machine A (e.g. the GPU): .clc files + the encoder-side reconstructions
    python benchmarks/cross_device.py encode ../shared/data/kodak --device cuda --out xdev_gpu
    # on machine B (e.g. this CPU): decode each file, compare with A's reconstruction pixel for pixel
    python benchmarks/cross_device.py verify xdev_gpu --device cpu --json xdev_gpu_on_cpu.json
    # smoke run: one device, a tiny model
    python benchmarks/cross_device.py encode photos/ --qualities 2 --model tiny.pt --dict none --device cpu --out x
    python benchmarks/cross_device.py verify x --model tiny.pt --dict none --device cpu

`encode` writes NAME_qQ.clc and NAME_qQ.png (the reconstruction the encoder computed on its own device, i.e.
what a decoder on that device gives) for every image and quality (default 1, 4, 8), and manifest.json (device,
model and dictionary ids, torch version). `verify` decodes every .clc on its device and reports, per file,
whether it decoded at all (a desynchronised entropy decoder gives an error or garbage), how many pixels differ
from the reconstruction, and by how much. The model and dictionary must be the same files on both machines
(their ids are checked against the manifest).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _codec(args: argparse.Namespace):
    from clccodec.api import Codec

    dictionary = None if args.dict is None else (False if args.dict == "none" else args.dict)
    return Codec(args.model, dictionary, args.device)


def _environment(codec) -> dict:
    import torch

    return {"device": str(codec.device), "gpu": torch.cuda.get_device_name() if codec.device.type == "cuda" else None,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "model_id": codec.model_id.hex(),
            "dictionary_id": codec.dictionary.id[:4].hex() if codec.dictionary is not None else None}


def encode(args: argparse.Namespace) -> int:
    from PIL import Image

    from clccodec.io.images import IMAGE_SUFFIXES, load_image

    codec = _codec(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    qualities = [float(q) for q in args.qualities.split(",")]
    files = []
    t0 = time.perf_counter()
    for p in images:
        img = load_image(p)
        for q in qualities:
            res = codec.encode_full(img, q, args.refs, reconstruct=True)
            stem = f"{p.stem}_q{q:g}"
            (out / f"{stem}.clc").write_bytes(res.data)
            Image.fromarray(res.reconstruction).save(out / f"{stem}.png")
            files.append(stem)
            print(f"{stem}: {len(res.data)} bytes", file=sys.stderr)
    manifest = {"files": files, "qualities": qualities, "refs": args.refs, "seconds": time.perf_counter() - t0,
                "encoder": _environment(codec)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} files to {out}", file=sys.stderr)
    return 0


def verify(args: argparse.Namespace) -> int:
    from PIL import Image

    from clccodec.errors import ClcError

    folder = Path(args.folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    codec = _codec(args)
    env = _environment(codec)
    if env["model_id"] != manifest["encoder"]["model_id"]:
        print(f"model {env['model_id']} is not the encoder's {manifest['encoder']['model_id']}", file=sys.stderr)
        return 2
    rows = []
    for stem in manifest["files"]:
        expected = np.asarray(Image.open(folder / f"{stem}.png").convert("RGB"))
        try:
            pixels, _ = codec.decode_pixels((folder / f"{stem}.clc").read_bytes())
        except ClcError as e:
            rows.append({"file": stem, "decoded": False, "error": str(e)})
            continue
        diff = np.abs(pixels.astype(np.int16) - expected.astype(np.int16))
        rows.append({"file": stem, "decoded": True, "identical": bool(not diff.any()),
                     "pixels_differing": int((diff.max(axis=2) > 0).sum()), "max_abs_diff": int(diff.max())})
        n = rows[-1]["pixels_differing"]
        print(f"{stem}: {f'{n} pixels differ' if n else 'identical'}", file=sys.stderr)
    identical = sum(r.get("identical", False) for r in rows)
    summary = {"encoder": manifest["encoder"], "decoder": env, "files": len(rows), "identical": identical,
               "decode_errors": sum(not r["decoded"] for r in rows),
               "max_abs_diff": max((r.get("max_abs_diff", 0) for r in rows), default=0)}
    print(f"{identical} of {len(rows)} files decode identically on {env['device']} "
          f"(encoded on {manifest['encoder']['device']}); decode errors: {summary['decode_errors']}; "
          f"max |diff| {summary['max_abs_diff']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "files": rows}, indent=1) + "\n")
    return 0 if identical == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="encode a folder of images on this device")
    e.add_argument("images")
    e.add_argument("--out", required=True)
    e.add_argument("--qualities", default="1,4,8")
    e.add_argument("--refs", type=int, default=3)
    v = sub.add_parser("verify", help="decode a folder written by encode on this device and compare")
    v.add_argument("folder")
    v.add_argument("--json")
    for q in (e, v):
        q.add_argument("--model", help="weights file (default: the shipped model)")
        q.add_argument("--dict", help="dictionary (default: the shipped one; 'none' disables)")
        q.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    return encode(args) if args.cmd == "encode" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
