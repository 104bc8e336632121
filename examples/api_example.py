"""Python API example: encode an image at several qualities, decode, and measure PSNR from the real bytes.

Usage: python examples/api_example.py IMAGE [--model WEIGHTS] [--dict DICT|none]
"""

import argparse
import math
import sys

import numpy as np
from PIL import Image

import clccodec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--model", default=None)
    ap.add_argument("--dict", default=None, help="dictionary path, or 'none'")
    args = ap.parse_args()
    dictionary = False if args.dict == "none" else args.dict

    codec = clccodec.Codec(args.model, dictionary=dictionary)  # load once, code many times
    original = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float64)
    for q in (1, 3, 5.5, 8):
        data = codec.encode(args.image, quality=q)
        decoded = np.asarray(codec.decode(data).convert("RGB"), dtype=np.float64)
        mse = np.mean((decoded - original) ** 2)
        info = clccodec.read_info(data)
        psnr = 10 * math.log10(255**2 / mse) if mse else float("inf")
        print(f"quality {q:>4}: {info['bytes']:>7} bytes  {info['bpp']:.4f} bpp  PSNR {psnr:.2f} dB  "
              f"refs {info['references']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
