"""Training settings: every option of `clc train` and of the library's TrainConfig, declared once here with its
default and help text (cli/training.py builds the command's options from these fields; no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def option(default: Any, help: str, **typer_kw: Any) -> Any:  # noqa: A002 - typer's own name for it
    """A field that `clc train` exposes as --name-with-dashes (extra keywords go to typer.Option: min, max, ...)."""
    return field(default=default, metadata={"help": help, **typer_kw})


@dataclass
class TrainConfig:
    data: str = ""  # folder of training photos (the command's argument; never Kodak: it is a test set)
    out: str = option("runs/full", "Run folder: checkpoints (last.pt, best.pt) and log.jsonl. An existing run resumes "
                      "exactly where it stopped.", path=True)
    config: str = option("full", "Model size: full or tiny.")
    init: str | None = option(None, "Start from these weights (e.g. the shipped src/clccodec/shipped/clc-full.pt) "
                              "instead of random.", path=True, show_default=False)
    steps: int = option(60_000, "Total steps to reach.")
    batch: int = option(8, "Crops per step (per GPU under torchrun).")
    # below 256 the latent is nearly all border and the entropy model learns the wrong statistics (docs/training.md)
    crop: int = option(256, "Training crop size.")
    crop_min: int = option(0, "Keep photos down to this short side too: each batch is cut at the largest multiple "
                           "of 64 its photos hold, up to --crop (0: photos smaller than --crop are left out).")
    lr: float = option(2e-4, "Adam learning rate (drops 10x at --lr-decay-at).")
    lr_decay_at: float = option(0.9, "Fraction of --steps after which the learning rate drops 10x.")
    schedule: str = option("step", "Learning-rate schedule: step (10x drop at --lr-decay-at) or cosine (to lr/100 "
                           "at --steps).")
    warmup: int = option(0, "Linear learning-rate warm-up steps.")
    anneal: int = option(0, "Cosine decay to lr/100 over the last N steps before --steps, from a constant rate "
                         "(an annealed release forked from a running campaign: docs/training.md); 0: off.", min=0)
    ema: float = option(0.0, "Decay of an exponential moving average of the weights, validated and saved as "
                        "best.pt (e.g. 0.999; 0: off).")
    quality: float | None = option(None, "Train one quality only (a single lambda); default: every quality.",
                                   show_default=False)
    q_power: float = option(1.0, "Draw each crop's quality as 1 + 7 u^P (u uniform): 1 spreads them evenly, 2 draws "
                            "half below 2.75 (more weight on low rates).")
    q_balance: float = option(0.0, "Weigh each crop's loss by lambda(q)^-B: the loss grows ~12x from quality 1 to 8, "
                              "so the top rates steer the model; 0.5 weighs the qualities about alike; 0: off.",
                              min=0.0)
    p_related: float = option(0.0, "Share of steps whose references start with crops of each crop's own photo "
                              "(teaches the model to use related references, as in a photo collection); 0: never.",
                              min=0.0, max=1.0)
    p_overlap: float = option(0.0, "Share of steps whose first reference is a window of each crop's own photo around "
                              "it (shifted, colour-jittered: a near-duplicate worth exploiting); 0: never.",
                              min=0.0, max=1.0)
    hard_rate: bool = option(False, "Train y's rate on the rounded latent (the bits the coder spends) instead of "
                             "under additive noise.")
    rate_scales: bool = option(False, "Switch on per-quality channel scales in g_a and g_s (start at 1; the weights "
                               "carry over).")
    null_prior: bool = option(False, "Switch on the CLM's null prior (its null token weighs as much as all reference "
                              "tokens together); the weights carry over.")
    query_slices: int | None = option(None, "Run the CLM after this many slices are decoded, its query seeing them "
                                      "(weights without it carry over) [default: the model's own]", min=0,
                                      show_default=False)
    match_weight: float = option(0.0, "Weight of the CLM's contrastive matching loss (teaches its query and key to "
                                 "find a position's content among the tokens); 0: off.", min=0.0)
    train_only: str = option("", "Train only these modules of the model, comma-separated (e.g. "
                             "clm,value_proj,fusion,entropy: the reference path, transforms frozen); '' trains "
                             "everything.")
    val_every: int = option(2000, "Validate (held-out photos) every N steps.")
    refresh_every: int = option(1000, "Recompute the reference bank's latents with the current g_a every N steps.",
                                min=1)
    max_minutes: float = option(0.0, "Stop with a checkpoint after this much time (0: no limit).")
    downscale_glob: str = option("", "Photos whose file name matches this glob are low-quality JPEGs: downscaled on "
                                 "load to hide their blocks ('' for none).")
    compile: bool = option(False, "torch.compile g_a and g_s (faster steps after a compile of tens of seconds per "
                           "input shape).")
    device: str = option("auto", "auto, cpu or cuda.")
    amp: bool | None = option(None, "bf16 autocast for the transforms [default: on where bf16 is native: CUDA, "
                              "AVX-512 BF16/AMX CPUs]", show_default=False, flag="--amp/--no-amp")
    seed: int = option(0, "Seed of the crops, qualities and references drawn.")
    # library-only settings (not on the command line)
    refs_max: int = 5
    p_no_refs: float = 0.15
    ref_crop: int = 256
    ref_per_image: int = 2
    val_crop: int = 256
    ckpt_every: int = 250
    log_every: int = 50
    val_fraction: float = 0.05
