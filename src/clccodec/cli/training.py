"""`clc train` and `clc export-weights`. Defaults come from TrainConfig (training/config.py)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..defaults import DEFAULT_MODEL
from ..training.config import TrainConfig
from .app import DeviceOpt, ForceOpt, app, err, guard, out

_D = TrainConfig()


@app.command(no_args_is_help=True)
def train(
    data: Annotated[Path, typer.Argument(help="Folder of training photos (never Kodak: it is a test set).", metavar="DIR")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints (last.pt, best.pt) and log.jsonl. "
                                          "An existing run resumes exactly where it stopped.")] = Path(_D.out),
    config: Annotated[str, typer.Option("--config", help="Model size: full or tiny.")] = _D.config,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from these weights (e.g. the shipped "
                                                 "src/clccodec/shipped/clc-full.pt) instead of random.",
                                                 show_default=False)] = None,
    steps: Annotated[int, typer.Option("--steps", help="Total steps to reach.")] = _D.steps,
    batch: Annotated[int, typer.Option("--batch", help="Crops per step (per GPU under torchrun).")] = _D.batch,
    crop: Annotated[int, typer.Option("--crop", help="Training crop size.")] = _D.crop,
    crop_min: Annotated[int, typer.Option("--crop-min", help="Keep photos down to this short side too: each "
                                          "batch is cut at the largest multiple of 64 its photos hold, up to "
                                          "--crop (0: photos smaller than --crop are left out).")] = _D.crop_min,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (drops 10x at --lr-decay-at).")] = _D.lr,
    lr_decay_at: Annotated[float, typer.Option("--lr-decay-at", help="Fraction of --steps after which the "
                                               "learning rate drops 10x.")] = _D.lr_decay_at,
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule: step (10x drop at "
                                          "--lr-decay-at) or cosine (to lr/100 at --steps).")] = _D.schedule,
    warmup: Annotated[int, typer.Option("--warmup", help="Linear learning-rate warm-up steps.")] = _D.warmup,
    ema: Annotated[float, typer.Option("--ema", help="Decay of an exponential moving average of the weights, "
                                       "validated and saved as best.pt (e.g. 0.999; 0: off).")] = _D.ema,
    quality: Annotated[Optional[float], typer.Option("--quality", help="Train one quality only (a single "
                                                     "lambda); default: every quality.", show_default=False)] = None,
    q_power: Annotated[float, typer.Option("--q-power", help="Draw each crop's quality as 1 + 7 u^P (u uniform): "
                                           "1 spreads them evenly, 2 draws half below 2.75 (more weight on low "
                                           "rates).")] = _D.q_power,
    q_balance: Annotated[float, typer.Option("--q-balance", help="Weigh each crop's loss by lambda(q)^-B: the "
                                             "loss grows ~12x from quality 1 to 8, so the top rates steer the "
                                             "model; 0.5 weighs the qualities about alike; 0: off.", min=0.0)]
    = _D.q_balance,
    p_related: Annotated[float, typer.Option("--p-related", help="Share of steps whose references start with "
                                             "crops of each crop's own photo (teaches the model to use related "
                                             "references, as in a photo collection); 0: never.", min=0.0, max=1.0)]
    = _D.p_related,
    p_overlap: Annotated[float, typer.Option("--p-overlap", help="Share of steps whose first reference is a "
                                             "window of each crop's own photo around it (shifted, colour-"
                                             "jittered: a near-duplicate worth exploiting); 0: never.", min=0.0,
                                             max=1.0)] = _D.p_overlap,
    hard_rate: Annotated[bool, typer.Option("--hard-rate", help="Train y's rate on the rounded latent (the bits "
                                            "the coder spends) instead of under additive noise.")] = _D.hard_rate,
    rate_scales: Annotated[bool, typer.Option("--rate-scales", help="Switch on per-quality channel scales in "
                                              "g_a and g_s (start at 1; the weights carry over).")] = False,
    null_prior: Annotated[bool, typer.Option("--null-prior", help="Switch on the CLM's null prior (its null "
                                             "token weighs as much as all reference tokens together); the "
                                             "weights carry over.")] = _D.null_prior,
    query_slices: Annotated[Optional[int], typer.Option("--query-slices", help="Run the CLM after this many "
                                                        "slices are decoded, its query seeing them (weights "
                                                        "without it carry over) [default: the model's own]",
                                                        min=0, show_default=False)] = _D.query_slices,
    match_weight: Annotated[float, typer.Option("--match-weight", help="Weight of the CLM's contrastive "
                                                "matching loss (teaches its query and key to find a "
                                                "position's content among the tokens); 0: off.", min=0.0)]
    = _D.match_weight,
    train_only: Annotated[str, typer.Option("--train-only", help="Train only these modules of the model, "
                                            "comma-separated (e.g. clm,value_proj,fusion,entropy: the reference "
                                            "path, transforms frozen); '' trains everything.")] = _D.train_only,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate (held-out photos) every N steps.")]
    = _D.val_every,
    refresh_every: Annotated[int, typer.Option("--refresh-every", help="Recompute the reference bank's latents "
                                               "with the current g_a every N steps.", min=1)] = _D.refresh_every,
    max_minutes: Annotated[float, typer.Option("--max-minutes", help="Stop with a checkpoint after this "
                                               "much time (0: no limit).")] = _D.max_minutes,
    downscale_glob: Annotated[str, typer.Option("--downscale-glob", help="Photos whose file name matches this "
                                                "glob are low-quality JPEGs: downscaled on load to hide their "
                                                "blocks ('' for none).")] = _D.downscale_glob,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile g_a and g_s (faster steps after "
                                           "a compile of tens of seconds per input shape).")] = _D.compile,
    device: DeviceOpt = _D.device,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16 autocast for the transforms "
                                                "[default: on where bf16 is native: CUDA, AVX-512 BF16/AMX CPUs]",
                                                show_default=False)] = _D.amp,
    seed: Annotated[int, typer.Option("--seed")] = _D.seed,
) -> None:
    """Train the variable-rate model (lambda sampled per crop over the whole quality range).

    Ctrl-C (or SIGTERM) stops after the current step with a checkpoint, as --max-minutes does; the same command
    resumes. A second Ctrl-C stops at once.

    Examples: clc train ../shared/data/train --out runs/full | clc train photos/ --init src/clccodec/shipped/clc-full.pt
    --steps 5000
    | torchrun --nproc_per_node 8 -m clccodec train photos/ --out runs/ddp --batch 16
    """

    def go() -> None:
        from ..training.trainer import train as run_training

        cfg = TrainConfig(data=str(data), out=str(out_dir), config=config, init=str(init) if init else None,
                          steps=steps, batch=batch, crop=crop, crop_min=crop_min, lr=lr, lr_decay_at=lr_decay_at,
                          schedule=schedule, warmup=warmup, ema=ema, quality=quality, q_power=q_power,
                          q_balance=q_balance, hard_rate=hard_rate, rate_scales=rate_scales, p_related=p_related,
                          p_overlap=p_overlap, null_prior=null_prior, query_slices=query_slices,
                          match_weight=match_weight, train_only=train_only, val_every=val_every,
                          refresh_every=refresh_every, max_minutes=max_minutes, device=device, compile=compile_,
                          amp=amp, seed=seed, downscale_glob=downscale_glob)
        stopped = run_training(cfg)
        if stopped in ("SIGINT", "SIGTERM"):  # the shell's convention: 128 + the signal's number
            err.print(f"clc: stopped by {stopped}; checkpoint saved in {out_dir / 'last.pt'} (the same command "
                      "resumes)", markup=False)
            raise typer.Exit(128 + int(getattr(signal, stopped)))

    guard(go)


@app.command("export-weights", no_args_is_help=True)
def export_weights(
    checkpoint: Annotated[Path, typer.Argument(help="Trainer checkpoint (best.pt or last.pt; with an EMA, both "
                                               "export the averaged weights).", metavar="CHECKPOINT")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (default: the shipped "
                                         "model's place, src/clccodec/shipped/clc-full.pt).",
                                         show_default=False)] = DEFAULT_MODEL,
    force: ForceOpt = False,
) -> None:
    """Snap a checkpoint onto the coder's fixed-point grids and write a shipped weights file.

    Example: clc export-weights runs/full/best.pt --force   (replaces the shipped weights; then rebuild the default
    dictionary with scripts/build_default_dict.sh and add the new model id to clccodec/release.py)
    """

    def go() -> None:
        from ..training.export import export_checkpoint

        if not checkpoint.exists():
            raise UsageError(f"{checkpoint}: no such file")
        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        mid = export_checkpoint(checkpoint, output)
        out.print(f"{output}: model id {mid.hex()}", markup=False)

    guard(go)
