"""Summarise a training run (runs/NAME/log.jsonl): validation table (markdown) and curve (PNG).

Usage: python scripts/training_report.py runs/full [--png models/validation_curve.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(run: Path) -> tuple[list[dict], list[dict], float]:
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in recs if "loss" in r]
    val = [r for r in recs if "val_loss" in r]
    return train, val, wall_seconds(recs)


def wall_seconds(recs: list[dict]) -> float:
    """Training wall time: the sum of every session's span (a resume starts a new one; gaps do not count)."""
    total, first, last = 0.0, None, None
    for r in recs:
        if r.get("event") == "start":
            if first is not None:
                total += last - first
            first = last = r["time"]
        elif first is not None and "event" not in r:
            last = r["time"]
    return total + (last - first if first is not None else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    train, val, wall = load(args.run)
    qs = [k for k in (val[0] if val else {}) if k.startswith("q")]
    print("| step | val loss | " + " | ".join(f"{q} bpp / PSNR" for q in qs) + " |")
    print("|---|---|" + "---|" * len(qs))
    for v in val:
        cells = " | ".join(f"{v[q]['bpp']:.3f} / {v[q]['psnr']:.2f}" for q in qs)
        print(f"| {v['step']} | {v['val_loss']:.3f} | {cells} |")
    if train:
        print(f"\ntraining steps logged: {train[-1]['step']}, wall time {wall / 3600:.2f} h")
    if args.png and val:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        a.plot([v["step"] for v in val], [v["val_loss"] for v in val], "o-")
        a.set_xlabel("step")
        a.set_ylabel("validation loss (mean over q of λ·255²·MSE + bpp)")
        for q in qs:
            b.plot([v[q]["bpp"] for v in val], [v[q]["psnr"] for v in val], "o-", label=q)
        b.set_xlabel("bpp (held-out crops, likelihood)")
        b.set_ylabel("PSNR (dB)")
        b.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
