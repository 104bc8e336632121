#!/usr/bin/env python
"""Write the byte-compatibility fixtures in tests/data/compat/ (tests/test_compat.py checks them).

Two small synthetic images (no photo from ../shared is committed), encoded with the shipped model and default
dictionary at two qualities with M = 0 and M = 3, plus one file from the seeded tiny test model; the manifest
records each file's model id, options, SHA-256 and the SHA-256 of its exact decoded pixels.

Run it only when the shipped weights change (the files written by the previous weights then stop matching, and
test_compat.py checks that decoding them names the release that wrote them); never to make a failing byte
comparison pass after a code change: that comparison is the point of the fixtures.

    PYTHONPATH=src python scripts/make_compat_fixtures.py            # rewrite tests/data/compat/
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "compat"
SHIPPED_CASES = [(2.0, 0), (2.0, 3), (5.5, 0), (5.5, 3)]
TINY_CASES = [(3.5, 0)]
TINY_SEED = 1234  # the seed tests/conftest.py builds its tiny model with


def synthetic(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like picture that PNG stores in a few KB: smooth shading, hard edges, a little texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        110 + 70 * np.sin(xx / (9 + 4 * seed)) * np.cos(yy / 13) + 60 * ((xx - w / 3) ** 2 + (yy - h / 2) ** 2 < 400),
        80 + 100 * xx / w + 50 * (yy > 0.6 * h),
        170 - 70 * np.cos((xx + 2 * yy) / 17) - 40 * ((xx // 16 + yy // 16) % 2),
    ], axis=2)
    img += np.repeat(np.repeat(rng.normal(0, 4, (h // 4 + 1, w // 4 + 1, 3)), 4, 0), 4, 1)[:h, :w]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def tiny_model_path(tmp: Path) -> Path:
    import torch

    from clccodec.model.network import CLCModel
    from clccodec.model.config import TINY
    from clccodec.model.weights import prepare_for_export, save_weights

    torch.manual_seed(TINY_SEED)
    model = CLCModel(TINY)
    prepare_for_export(model)
    save_weights(model, tmp / "tiny.pt")
    return tmp / "tiny.pt"


def encode_cases(codec, images: dict[str, Path], cases, prefix: str, manifest: dict) -> None:
    for name, path in images.items():
        for q, m in cases:
            res = codec.encode_full(path, q, m, reconstruct=True, exact=True, fallback=False)  # m references, always
            from clccodec.format import container

            res.data = container.pack(container.unpack(res.data), version=1)  # the fixtures are version-1 files
            fname = f"{prefix}{name}_q{q:g}_m{m}.clc"
            (OUT / fname).write_bytes(res.data)
            manifest["files"][fname] = {"source": path.name, "quality": q, "refs": m, "model": prefix.rstrip("_") or "shipped",
                                        "model_id": codec.model.model_id.hex(), "bytes": len(res.data),
                                        "sha256": sha(res.data), "pixels_sha256": sha(res.reconstruction.tobytes())}
            print(f"{fname}: {len(res.data)} bytes", file=sys.stderr)


def main() -> int:
    import tempfile

    from clccodec import Codec

    OUT.mkdir(parents=True, exist_ok=True)
    images = {"a": OUT / "a.png", "b": OUT / "b.png"}
    Image.fromarray(synthetic(96, 144, 0)).save(images["a"], optimize=True)
    Image.fromarray(synthetic(77, 101, 1)).save(images["b"], optimize=True)  # odd size: padding and cropping
    shipped = Codec(device="cpu")
    assert shipped.dictionary is not None, "the default dictionary does not fit the shipped model"
    manifest = {"about": "written by scripts/make_compat_fixtures.py; checked by tests/test_compat.py",
                "shipped_model_id": shipped.model.model_id.hex(), "dictionary_id": shipped.dictionary.id.hex(),
                "tiny_seed": TINY_SEED, "files": {}}
    encode_cases(shipped, images, SHIPPED_CASES, "", manifest)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Codec(tiny_model_path(Path(tmp)), dictionary=False, device="cpu")
        manifest["tiny_model_id"] = tiny.model.model_id.hex()
        encode_cases(tiny, {"a": images["a"]}, TINY_CASES, "tiny_", manifest)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
