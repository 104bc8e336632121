#!/usr/bin/env python
"""The paper's ablations of the latent reference path, on real bytes: none / random / retrieved, the
dictionary size K, and where the references act (the entropy model's CLM context, the synthesis's CLS fusion).

    python benchmarks/latent_ablation.py ../shared/data/kodak --dict K300=/tmp/k300.clcdict \\
        --dict K1000=/tmp/k1000.clcdict --dict K3000=src/clccodec/shipped/default.clcdict \\
        --quality 1 2 3 4 --json benchmarks/results/refs/latent_ablation_v7.json \\
        --md benchmarks/results/refs/latent_ablation_v7.md

For every image, the analysis y is computed once and every dictionary retrieves M references with it (timed:
the retrieval time per image). Every variant is coded at every quality on the exact probability path and
packed in a real `.clc` container (its size is the rate); the distortion is PSNR of the decoder's pixels (fast
synthesis, 8-bit RGB). The variants:

* `none`: M = 0, the plain file;
* `random`: M entries of the last --dict drawn at random (seeded per image);
* one `retrieved` variant per --dict (NAME=PATH): the default encoder's file with that dictionary;
* `CLS off` (last --dict): the references condition the entropy model (CLM context), and the synthesis sees
  the reference-free CLM output;
* `CLM off` (last --dict): the entropy model codes without references (the `none` strings), and the
  synthesis fuses the references aligned by the CLM's query on the decoded latent;
* `fallback by bytes` / `fallback by cost` (last --dict): per image and quality, the smaller of the `none` and
  `retrieved` files, or the one of lower real cost lambda * 255^2 * MSE + bpp (what `--effort 1` keeps).

The two split variants are ablations, not files a decoder reads (the format has no switch for them); their
size is a real container with the references listed. On the first image, `Codec.encode` (effort 0) must write
the smaller of the `none` and `retrieved` files byte for byte. Kodak is the test set: report, never tune here.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from cli_rd import bd_against, pct, report, spread

from clccodec import container
from clccodec.api import Codec
from clccodec.container import ClcFile, TileStreams
from clccodec.dictionary.store import ReferenceDictionary
from clccodec.evaluation.metrics import psnr
from clccodec.ids import NO_DICTIONARY
from clccodec.imageio import load_image, pad_to_multiple, to_pixels, to_tensor
from clccodec.model.codec import PAD_MULTIPLE
from clccodec.model.exact import exact_mode
from clccodec.quality import lambda_at, quantize_quality


class Coded:
    """One coding of a scaled latent on the exact probability path, keeping what the split variants need."""

    def __init__(self, model, y_s: torch.Tensor, z: torch.Tensor, codes: torch.Tensor | None) -> None:
        eb = model.entropy_bottleneck
        z_string = eb.compress(z)[0]
        self.z_hat = eb.decompress([z_string], z.shape[-2:]).double()
        with exact_mode(y_s.device):
            feat, y_a, late = model._decoder_context(self.z_hat, model._tokens(codes))
            strings, self.y_hat, self.y_a = model.entropy.compress(y_s.double(), feat, y_a, late,
                                                                   model._latent_band(y_s.shape[-1]))
        self.streams = TileStreams(z_string, strings)


def aligned_context(model, z_hat: torch.Tensor, codes: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    """The y_a a decoder with references computes for an already decoded latent y_hat (CLM off)."""
    with exact_mode(z_hat.device):
        _, y_a, late = model._decoder_context(z_hat, model._tokens(codes))
        if late is not None:
            y_a = late(y_hat[:, : sum(model.cfg.slices[: model.cfg.query_slices])])
    return y_a


def reference_free_context(model, z_hat: torch.Tensor) -> torch.Tensor:
    with exact_mode(z_hat.device):
        return model._decoder_context(z_hat, None)[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", help="folder of test images (Kodak)")
    ap.add_argument("--dict", action="append", required=True, metavar="NAME=PATH",
                    help="a dictionary to retrieve from (repeatable; the last one serves random and the splits)")
    ap.add_argument("--model", default=None, help="weights (default: the shipped model)")
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--quality", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--limit", type=int, help="use N images spread over the set")
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    images = spread(sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() == ".png"), args.limit)
    named = [tuple(d.split("=", 1)) for d in args.dict]
    codec = Codec(args.model, dictionary=False, device="cpu")
    model, m = codec.model, args.refs
    dicts = {name: ReferenceDictionary.load(path) for name, path in named}
    last_name, last = named[-1][0], dicts[named[-1][0]]
    variants = ["none", "random", *(f"retrieved {n}" for n in dicts), "CLS off", "CLM off"]
    derived = ["fallback by bytes", "fallback by cost"]
    rows: list[dict] = []
    retrieval_s: dict[str, list[float]] = {n: [] for n in dicts}
    load = os.getloadavg()[0]
    t_start = time.perf_counter()
    for k, path in enumerate(images):
        img = load_image(path)
        x = pad_to_multiple(to_tensor(img.pixels), PAD_MULTIPLE)
        with torch.inference_mode():
            y = model.analyse(x)
            indices = {}
            for name, d in dicts.items():
                t0 = time.perf_counter()
                indices[name] = d.retrieve(model, x, m, latent=y)
                retrieval_s[name].append(time.perf_counter() - t0)
            indices["random"] = random.Random(k).sample(range(len(last)), m)
            codes = {n: (dicts.get(n, last)).values(ix) for n, ix in indices.items()}

            def size(streams: TileStreams, q: float, name: str | None) -> int:
                d = dicts.get(name, last) if name else None
                f = ClcFile(img.width, img.height, codec.model_id, q, img.grayscale,
                            d.file_id if d else NO_DICTIONARY, indices[name] if name else [], 0, [streams],
                            slices_total=len(model.cfg.slices))
                return len(container.pack(f))

            def measure(y_hat: torch.Tensor, y_a: torch.Tensor, q: float) -> float:
                x_hat = model._reconstruct(y_hat, y_a, q, exact=False)
                return psnr(img.pixels, to_pixels(x_hat[..., : img.height, : img.width]))

            for q in map(quantize_quality, args.quality):
                y_s = model.scaled_latent(model.analyse(x, q) if model.cfg.rate_scales else y, q)
                z = model._hyper_analyse(y_s)
                none = Coded(model, y_s, z, None)
                out = {"none": (size(none.streams, q, None), measure(none.y_hat, none.y_a, q))}
                for name in ["random", *dicts]:
                    c = Coded(model, y_s, z, codes[name])
                    key = "random" if name == "random" else f"retrieved {name}"
                    out[key] = (size(c.streams, q, name), measure(c.y_hat, c.y_a, q))
                    if name == last_name:
                        out["CLS off"] = (out[key][0], measure(c.y_hat, reference_free_context(model, c.z_hat), q))
                    if k == 0 and q == quantize_quality(args.quality[0]) and name != "random":
                        # the default encoder writes the smaller of these files, byte for byte
                        real = len(Codec(model, dictionary=dicts[name]).encode(img, q, m, strip=True))
                        if real != min(out["none"][0], out[key][0]):
                            sys.exit(f"{key}: {out[key][0]} bytes (none: {out['none'][0]}), Codec.encode: {real}")
                y_a = aligned_context(model, none.z_hat, codes[last_name], none.y_hat)
                out["CLM off"] = (size(none.streams, q, last_name), measure(none.y_hat, y_a, q))
                pair = [out["none"], out[f"retrieved {last_name}"]]
                out["fallback by bytes"] = min(pair, key=lambda r: r[0])
                px = img.width * img.height
                out["fallback by cost"] = min(pair, key=lambda r: lambda_at(q) * 255**2 * 10 ** (-r[1] / 10)
                                              + 8 * r[0] / px)
                for v in variants + derived:
                    rows.append({"image": path.stem, "quality": q, "variant": v, "bytes": out[v][0],
                                 "bpp": 8 * out[v][0] / px, "psnr": out[v][1]})
        print(f"{path.stem} (q {q:g} bytes): " + "  ".join(f"{r['variant']} {r['bytes']}" for r in rows[-len(variants + derived):]),
              flush=True)

    variants += derived
    points = {v: [{"quality": q, **{key: statistics.mean(r[key] for r in rows
                                                         if r["variant"] == v and r["quality"] == q)
                                    for key in ("bpp", "psnr")}}
                  for q in map(quantize_quality, args.quality)] for v in variants}
    summary = []
    for v in variants:
        bd_all, bd_le1 = bd_against(points["none"], points[v])
        summary.append({"variant": v, "bd_rate_all": bd_all, "bd_rate_le1bpp": bd_le1,
                        "bytes_saved": statistics.mean(1 - r["bytes"] / b["bytes"] for r, b in
                                                       zip((r for r in rows if r["variant"] == v),
                                                           (r for r in rows if r["variant"] == "none")))})
    out = {"images": [p.stem for p in images], "refs": m, "dictionaries": dict(named),
           "dictionary_entries": {n: len(d) for n, d in dicts.items()},
           "retrieval_ms": {n: 1000 * statistics.mean(t) for n, t in retrieval_s.items()},
           "cpus": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS", "all"), "load_at_start": load,
           "seconds": time.perf_counter() - t_start, "points": points, "summary": summary, "rows": rows}
    lines = [f"### Latent reference ablations on {len(images)} images (M = {m}, q "
             f"{', '.join(f'{q:g}' for q in args.quality)}; {out['cpus']} CPUs, load average {load:.1f} at start)",
             "", "| variant | entries | retrieval ms / image | BD-rate vs none (PSNR, all points) | (<= 1 bpp) | "
             "bytes saved vs none |", "|---|---:|---:|---:|---:|---:|"]
    for s in summary:
        name = s["variant"].removeprefix("retrieved ")
        entries = len(dicts[name]) if name in dicts else (len(last) if s["variant"] != "none" else 0)
        ms = f"{out['retrieval_ms'][name]:.0f}" if name in dicts else "–"
        lines.append(f"| {s['variant']} | {entries} | {ms} | {pct(s['bd_rate_all'])} | {pct(s['bd_rate_le1bpp'])} | "
                     f"{100 * s['bytes_saved']:+.2f} % |")
    lines += ["", "| variant | quality | bpp | PSNR dB |", "|---|---:|---:|---:|"]
    lines += [f"| {v} | {p['quality']:g} | {p['bpp']:.4f} | {p['psnr']:.3f} |" for v in variants for p in points[v]]
    report("\n".join(lines), out, args.md, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
