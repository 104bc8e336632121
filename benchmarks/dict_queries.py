"""Which encode-time query retrieves useful references? Bits saved (real .clc files), PSNR, token coverage.

For every validation photo of the training split (the trainer's hash split; never Kodak) and every retrieval
strategy, the image is encoded through the real API at one quality with M references, and we record the file
size, the PSNR of the encoder-side reconstruction, and a model-side proxy, *coverage*: the mean, over the
image's own value tokens, of the squared distance to the nearest token of the chosen references, relative to
the tokens' variance (lower: the references hold more of what the image looks like in the space the CLM
attends in). Baselines: no references, and M random entries. `--oracle` adds "self": references retrieved from
a dictionary of the query photos' own crops (every crop an entry), the most a reference can share with the
image: if even those save no bits, the model is not using references (a training problem, not a retrieval one).

    python benchmarks/dict_queries.py --model src/clccodec/shipped/clc-full.pt --data ../shared/data/train \\
        --clusters 1000 --stride 128 --quality 3 --refs 3 --json runs/dict_queries.json

The dictionary is built (unless --dict is given) from the training photos *minus* the validation photos, so a
query never finds crops of itself. Compare the extractors by running it twice: the default (`latent`) and
`--features resnet50 --weights resnet50.pth` (the paper's).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.api import Codec  # noqa: E402
from clccodec.dictionary.build import BuildOptions, build_dictionary  # noqa: E402
from clccodec.dictionary.store import ReferenceDictionary  # noqa: E402
from clccodec.imageio import load_image, pad_to_multiple, to_tensor  # noqa: E402
from clccodec.model.codec import PAD_MULTIPLE  # noqa: E402
from clccodec.model.reference import values_to_int8  # noqa: E402
from clccodec.model.weights import load_weights  # noqa: E402
from clccodec.training.data import is_validation, training_images  # noqa: E402

# (name, query, rotate, merge)
STRATEGIES = [
    ("global", "global", False, "distance"),
    ("global+rot", "global", True, "distance"),
    ("tiles", "tiles", False, "distance"),
    ("tiles+rot", "tiles", True, "distance"),
    ("tiles+rot rank", "tiles", True, "rank"),
    ("tiles+global+rot", "tiles+global", True, "distance"),
]


def coverage(img_codes: torch.Tensor, ref_codes: torch.Tensor) -> float:
    """img (C, h, w), refs (R, C, h', w') int8 codes -> mean nearest-token squared distance / token variance."""
    q = img_codes.float().flatten(1).T  # (T, C)
    if ref_codes.shape[0] == 0:
        return 1.0
    r = ref_codes.float().permute(0, 2, 3, 1).reshape(-1, q.shape[1])
    d = torch.cdist(q, r).pow(2).min(1).values.mean()
    var = (q - q.mean(0)).pow(2).sum(1).mean().clamp_min(1e-9)
    return float(d / var)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--dict", default=None, help="an existing .clcdict (default: build one from the train split)")
    ap.add_argument("--glob", default=None, help="dictionary sources (e.g. 'unsplash_*.png'); queries use all")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--quality", type=float, default=3.0)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="at most this many query photos (0: all)")
    ap.add_argument("--features", default="latent", choices=["latent", "resnet50"])
    ap.add_argument("--weights", default=None, help="ResNet-50 state dict (for --features resnet50)")
    ap.add_argument("--no-encode", action="store_true", help="coverage only (skip encoding: much faster)")
    ap.add_argument("--config", default=None, help="no --model: random weights of this config (tiny, full)")
    ap.add_argument("--strategies", nargs="+", default=None, choices=[s[0] for s in STRATEGIES],
                    help="retrieval strategies to run (default: all)")
    ap.add_argument("--oracle", action="store_true", help="also 'self': references from the query photos' crops")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    if args.model is None:
        if args.config is None:
            ap.error("give --model, or --config for random weights")
        from clccodec.model.codec import CLCModel
        from clccodec.model.config import CONFIGS
        from clccodec.model.weights import prepare_for_export, save_weights

        torch.manual_seed(0)
        net = CLCModel(CONFIGS[args.config])
        prepare_for_export(net)
        args.model = str(Path(tempfile.mkdtemp(prefix="dict_queries_")) / f"random_{args.config}.pt")
        save_weights(net, args.model)
    model = load_weights(args.model)
    files = training_images(args.data)
    val = [p for p in files if is_validation(p, 0.05)]
    if args.limit:
        val = val[: args.limit]
    if args.dict:
        d = ReferenceDictionary.load(args.dict)
        inside = {Path(s["file"]).name for s in d.data.provenance.get("sources", [])}
        if any(p.name in inside for p in val):
            print(f"skipping {sum(p.name in inside for p in val)} query photos that are sources of {args.dict}")
            val = [p for p in val if p.name not in inside]
    else:
        src = Path(tempfile.mkdtemp(prefix="dict_train_split_"))
        for p in files:
            if not is_validation(p, 0.05):
                (src / p.name).symlink_to(p.resolve())
        d, rep = build_dictionary(src, model, BuildOptions(clusters=args.clusters, crop=args.crop,
                                                           stride=args.stride, pattern=args.glob,
                                                           features=args.features, weights=args.weights))
        print(f"dictionary: K={len(d)} from {rep.crops} crops of {rep.images} train-split photos", flush=True)
    d.extractor_weights = args.weights
    oracle = None
    if args.oracle:
        src = Path(tempfile.mkdtemp(prefix="dict_query_photos_"))
        for p in val:
            (src / p.name).symlink_to(p.resolve())
        oracle, rep = build_dictionary(src, model, BuildOptions(clusters=1 << 20, crop=args.crop,
                                                                stride=args.stride, features=args.features,
                                                                weights=args.weights))
        oracle.extractor_weights = args.weights
        print(f"oracle dictionary: K={len(oracle)} crops of the {rep.images} query photos", flush=True)
    strategies = [s for s in STRATEGIES if args.strategies is None or s[0] in args.strategies]
    codec = Codec(model, dictionary=d, device="cpu")
    self_codec = Codec(model, dictionary=oracle, device="cpu") if oracle is not None else None
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {}
    for p in val:
        img = load_image(p)
        x = pad_to_multiple(to_tensor(img.pixels), PAD_MULTIPLE)
        with torch.no_grad():
            own = values_to_int8(model.reference_values(x))[0]
        choices = {"none": [], "random": sorted(rng.choice(len(d), args.refs, replace=False).tolist())}
        for name, query, rotate, merge in strategies:
            choices[name] = d.retrieve(model, x, args.refs, query=query, rotate=rotate, merge=merge)
        if oracle is not None:
            choices["self"] = oracle.retrieve(model, x, args.refs)
        for name, idx in choices.items():
            src_dict, src_codec = (oracle, self_codec) if name == "self" else (d, codec)
            row = {"image": p.name, "indices": idx, "coverage": coverage(own, src_dict.values(idx))}
            if not args.no_encode:
                src_dict.retrieve = lambda model, x, m, idx=idx, **kw: idx  # the real encoder, these indices
                res = src_codec.encode_full(img, args.quality, len(idx), reconstruct=True)
                del src_dict.retrieve
                mse = float(np.mean((res.reconstruction.astype(np.float64) - img.pixels) ** 2))
                row |= {"bytes": len(res.data), "bpp": 8 * len(res.data) / (img.width * img.height),
                        "psnr": 10 * math.log10(255**2 / max(mse, 1e-10))}
            rows.setdefault(name, []).append(row)
        print(p.name, {k: v[-1].get("bytes", round(v[-1]["coverage"], 4)) for k, v in rows.items()}, flush=True)

    base = rows["none"]
    summary = {}
    for name, r in rows.items():
        summary[name] = {"coverage": round(float(np.mean([a["coverage"] for a in r])), 4)}
        if args.no_encode:
            continue
        saved = [100 * (1 - a["bytes"] / b["bytes"]) for a, b in zip(r, base)]
        summary[name] |= {
            "bpp": round(float(np.mean([a["bpp"] for a in r])), 4),
            "psnr": round(float(np.mean([a["psnr"] for a in r])), 3),
            "bits_saved_pct_vs_none": round(float(np.mean(saved)), 3),
            "dpsnr_vs_none": round(float(np.mean([a["psnr"] - b["psnr"] for a, b in zip(r, base)])), 4)}
    print(f"\n{len(val)} validation photos, quality {args.quality}, M = {args.refs}, K = {len(d)}")
    print("| strategy | bpp | PSNR | bits saved vs none % | dPSNR vs none | coverage |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s.get('bpp', '-')} | {s.get('psnr', '-')} | {s.get('bits_saved_pct_vs_none', '-')} | "
              f"{s.get('dpsnr_vs_none', '-')} | {s['coverage']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "K": len(d), "quality": args.quality,
                                               "refs": args.refs, "summary": summary, "per_image": rows}, indent=1))


if __name__ == "__main__":
    main()
