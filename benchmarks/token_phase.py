#!/usr/bin/env python
"""Are reference tokens robust to where content sits on the 16-pixel latent grid? (docs/references.md)

A dictionary entry's value tokens describe its content at the entry's own grid phase; the same content in
another photo (a sibling view, a burst frame, a crop) almost never sits at the same phase. Two measurements on
validation photos of the training split (the trainer's hash split; never Kodak), M = 0 entropy model, frozen:

1. **Match error.** The image's own value tokens, in 4x4-token blocks, against the best-matching block of
   references made from the *same image shifted by (dy, dx) pixels* (cut into 16x16-token entries at a stride
   of 8, so every whole-cell offset is present): relative squared error |own - best|^2 / |own|^2 (0: an exact
   copy, ~1: no better than zero). Also against the top-3 retrieved and 3 random entries of a dictionary.
2. **Information, linearly.** Bits of the quantised slices under the model's (mu, sigma), and after a mean
   correction by a ridge regression from the reference tokens' 3x3 neighbourhood at each latent position
   (fitted on half of the photos, scored on the other half): the reference is the image's own tokens, the image
   shifted by 8 pixels (every photo the same phase, exactly or up to 1 or 2 pixels), or shifted by a random
   phase per photo (its tokens as they are, or phase-averaged).

    python benchmarks/token_phase.py --model src/clccodec/shipped/clc-full.pt \
        --dict src/clccodec/shipped/default.clcdict --json benchmarks/results/refs/token_phase_v5.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clccodec.dictionary.store import ReferenceDictionary  # noqa: E402
from clccodec.imageio import load_image, pad_to_multiple, to_tensor  # noqa: E402
from clccodec.model.codec import PAD_MULTIPLE, CLCModel  # noqa: E402
from clccodec.model.reference import int8_to_values, values_to_int8  # noqa: E402
from clccodec.model.weights import load_weights  # noqa: E402
from clccodec.training.data import is_validation, training_images  # noqa: E402

BLOCK = 4
SHIFTS = [(0, 1), (2, 2), (4, 4), (8, 8), (16, 16)]


PHASES = (-6, -2, 2, 6)  # pixel shifts (each axis) a phase-averaged token averages over: centred, 4 px apart


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved up / left by (dy, dx) pixels (down / right if negative), edges replicated."""
    x = F.pad(x, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)), mode="replicate")
    return x[..., max(dy, 0) : x.shape[-2] - max(-dy, 0), max(dx, 0) : x.shape[-1] - max(-dx, 0)]


@torch.no_grad()
def phase_averaged(model: CLCModel, x: torch.Tensor) -> torch.Tensor:
    """The mean of the value tokens over len(PHASES)^2 pixel shifts of x: what the content looks like on the
    grid whatever its phase (a candidate for dictionary values; no int8 rounding)."""
    return torch.stack([model.value_proj(model.analyse(shifted(x, a, b)))[0] for a in PHASES for b in PHASES]).mean(0)


@torch.no_grad()
def tokens(model: CLCModel, x: torch.Tensor) -> torch.Tensor:
    """Value tokens (C_r, h, w) as a dictionary stores them (on the int8 grid)."""
    return int8_to_values(values_to_int8(model.value_proj(model.analyse(x))), torch.float32)[0]


def match_errors(own: torch.Tensor, refs: torch.Tensor) -> np.ndarray:
    """Relative error of each 4x4 block of own (C, h, w) to its best block in refs (R, C, hr, wr)."""
    ob = F.unfold(own[None], BLOCK, stride=BLOCK)[0].T
    cb = F.unfold(refs, BLOCK).permute(0, 2, 1).reshape(-1, ob.shape[1])
    energy = ob.pow(2).sum(1)
    d = energy[:, None] - 2 * ob @ cb.T + cb.pow(2).sum(1)[None]
    return (d.min(1).values.clamp_min(0) / energy.clamp_min(1e-6)).numpy()


def entries(t: torch.Tensor, size: int = 16, stride: int = 8) -> torch.Tensor:
    return torch.stack([t[:, i : i + size, j : j + size] for i in range(0, t.shape[1] - size + 1, stride)
                        for j in range(0, t.shape[2] - size + 1, stride)])


@torch.no_grad()
def slice_stats(model: CLCModel, x: torch.Tensor, q: float) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per slice (y_i, mu_i, sigma_i) of the M = 0 entropy model (eval: rounded latents as context)."""
    ent = model.entropy
    y_s = model.analyse(x, q) * model.gains(torch.tensor([q]))[0]
    z = model._hyper_analyse(y_s)
    med = model._z_medians()
    feat, y_a, _ = model._decoder_context(torch.round(z - med) + med, None)
    ctx, rows = [feat, y_a], []
    for i, y_i in enumerate(y_s.split(ent.slices, 1)):
        out = ent.param_nets[i](torch.cat(ctx, 1))
        s = y_i.shape[1]
        mu, sig = out[:, :s], ent.sigma(out[:, s:]).clamp_min(0.11)
        rows.append((y_i, mu, sig))
        y_hat = torch.round(y_i - mu) + mu
        ctx.append(y_hat + ent.lrp_nets[i](torch.cat(ctx + [y_hat], 1)).clamp(-0.5, 0.5))
    return rows


def bits(y: torch.Tensor, mu: torch.Tensor, sig: torch.Tensor) -> float:
    sym = torch.round(y - mu)
    n = torch.distributions.Normal(0.0, 1.0)
    return float(-torch.log2((n.cdf((sym + 0.5) / sig) - n.cdf((sym - 0.5) / sig)).clamp_min(1e-9)).sum())


def neighbourhood(t: torch.Tensor) -> torch.Tensor:
    u = F.unfold(t[None], 3, padding=1)[0].T
    return torch.cat([u, torch.ones(u.shape[0], 1)], 1).double()


def ridge_gain(stats: list, refs: list[torch.Tensor], ridge: float = 100.0) -> float:
    """Bits change (%) of the second half's slices after a mean correction fitted on the first half."""
    half = len(stats) // 2
    before = after = 0.0
    for i in range(len(stats[0])):
        X = torch.cat([neighbourhood(refs[k]) for k in range(half)])
        R = torch.cat([(stats[k][i][0] - stats[k][i][1])[0].flatten(1).T.double() for k in range(half)])
        W = torch.linalg.solve(X.T @ X + ridge * torch.eye(X.shape[1], dtype=X.dtype), X.T @ R)
        for k in range(half, len(stats)):
            y_i, mu, sig = stats[k][i]
            corr = (neighbourhood(refs[k]) @ W).float().T.reshape(1, -1, *y_i.shape[-2:])
            before += bits(y_i, mu, sig)
            after += bits(y_i, mu + corr, sig)
    return 100 * (after / before - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dict", help="a .clcdict built for --model (adds retrieved / random entries to part 1)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--quality", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_weights(args.model).eval()
    d = ReferenceDictionary.load(args.dict) if args.dict else None
    rng = np.random.default_rng(args.seed)
    val = [p for p in training_images(args.data) if is_validation(p, 0.05)][: args.limit]
    errors: dict[str, list[np.ndarray]] = {}
    stats, probe_refs = [], {"own": [], "shift (8, 8)": [], "shift (8, 8) +- 1 px": [],
                             "shift (8, 8) +- 2 px": [], "random phase": [], "random phase, phase-averaged": []}
    for p in val:
        im = load_image(p).pixels[:512, :768]  # bounded cost; photos are cropped, not scaled (phase intact)
        x = pad_to_multiple(to_tensor(np.ascontiguousarray(im)), PAD_MULTIPLE)
        own = tokens(model, x)
        by_shift = {}
        for dy, dx in SHIFTS:
            by_shift[dy, dx] = tokens(model, shifted(x, dy, dx))
            refs = entries(by_shift[dy, dx])
            errors.setdefault(f"shift ({dy}, {dx}) px", []).append(match_errors(own, refs))
        if d is not None:
            with torch.no_grad():
                idx = d.retrieve(model, x, 3)
            errors.setdefault("retrieved (top 3)", []).append(
                match_errors(own, int8_to_values(d.values(idx), torch.float32)))
            errors.setdefault("random (3)", []).append(
                match_errors(own, int8_to_values(d.values(rng.integers(0, len(d), 3).tolist()), torch.float32)))
        own_avg = phase_averaged(model, x)
        for dy, dx in ((8, 8), (5, 11)):
            errors.setdefault(f"phase-averaged, shift ({dy}, {dx}) px", []).append(
                match_errors(own_avg, entries(phase_averaged(model, shifted(x, dy, dx)))))
        stats.append(slice_stats(model, x, args.quality))
        probe_refs["own"].append(own)
        probe_refs["shift (8, 8)"].append(by_shift[8, 8])  # part 1's (one analysis, not two)
        for r in (1, 2):  # a phase known only roughly: jittered by up to r pixels per axis, per photo
            probe_refs[f"shift (8, 8) +- {r} px"].append(tokens(model, shifted(x, *(8 + int(v) for v in
                                                                                  rng.integers(-r, r + 1, 2)))))
        phase = tuple(int(v) for v in rng.integers(1, 16, 2))
        probe_refs["random phase"].append(tokens(model, shifted(x, *phase)))
        probe_refs["random phase, phase-averaged"].append(phase_averaged(model, shifted(x, *phase)))
        print(p.name, flush=True)

    print(f"\n{len(val)} validation photos (<= 768x512), 4x4-token blocks: relative error of the best match")
    print("| reference | median | 25 % | share < 0.25 | share < 0.5 |")
    print("|---|---:|---:|---:|---:|")
    part1 = {}
    for name, e in errors.items():
        v = np.concatenate(e)
        part1[name] = {"median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                       "below_0.25": float((v < 0.25).mean()), "below_0.5": float((v < 0.5).mean())}
        r = part1[name]
        print(f"| {name} | {r['median']:.3f} | {r['q25']:.3f} | {r['below_0.25']:.3f} | {r['below_0.5']:.3f} |")
    print(f"\nslice bits after a linear mean correction from the reference tokens (q {args.quality:g}; fit on "
          f"{len(val) // 2} photos, scored on {len(val) - len(val) // 2})")
    print("| reference | bits vs the model alone |")
    print("|---|---:|")
    zeros = [torch.zeros_like(t) for t in probe_refs["own"]]
    part2 = {"none (bias only)": ridge_gain(stats, zeros)}
    part2.update({name: ridge_gain(stats, refs) for name, refs in probe_refs.items()})
    for name, g in part2.items():
        print(f"| {name} | {g:+.2f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "dict": args.dict, "photos": len(val),
                                               "quality": args.quality, "match_error": part1,
                                               "linear_bits_pct": part2}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
