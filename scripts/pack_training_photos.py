#!/usr/bin/env python
"""Pack the training photos into a compact folder for the GPU machine (scripts/gpu_train.sh).

    python scripts/pack_training_photos.py ../shared/data/train ../shared/data/train_extra -o .gpu/photos

Everything that travels to the device machine must fit in 64 MiB, and the tracked weights and dictionary take
about 40 MB of it, so each photo is downscaled (longest side at most --max-side, never upscaled; Lanczos,
which also hides the sources' JPEG blocks) and re-encoded as JPEG; the JPEG quality steps down from --quality
until the folder fits --budget-mb. File names are kept, so the trainer's hash split puts the same photos in
validation there as here. Kodak files are refused (the loader's rule). The folder is not committed.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clccodec.io.images import list_images  # noqa: E402


def pack(photo: Path, max_side: int, quality: int) -> bytes:
    with Image.open(photo) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        s = max_side / max(im.size)
        if s < 1:
            im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality, subsampling=0)
        return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=ROOT / ".gpu" / "photos")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--quality", type=int, default=92)
    ap.add_argument("--budget-mb", type=float, default=20.0)
    args = ap.parse_args()
    photos = list_images(args.folders, recursive=True, refuse_kodak="train on")
    names = [p.name for p in photos]
    if len(set(names)) != len(names):
        raise SystemExit("two photos share a file name: the split is by name, rename one")
    for quality in range(args.quality, 49, -4):
        blobs = [pack(p, args.max_side, quality) for p in photos]
        total = sum(map(len, blobs))
        print(f"quality {quality}: {len(blobs)} photos, {total / 1e6:.1f} MB", flush=True)
        if total <= args.budget_mb * 1e6:
            break
    else:
        raise SystemExit(f"cannot fit {len(photos)} photos in {args.budget_mb} MB: lower --max-side")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.jpg"):
        old.unlink()
    for p, b in zip(photos, blobs):
        (args.out / (p.stem + ".jpg")).write_bytes(b)
    print(f"wrote {args.out} (JPEG quality {quality}, longest side <= {args.max_side})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
