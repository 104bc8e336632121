"""`clc train`, `clc export-weights` and `clc export-onnx`. The training options, their defaults and help texts are
TrainConfig's (training/config.py): this module only turns its fields into command-line options."""

from __future__ import annotations

import dataclasses
import inspect
import signal
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..defaults import DEFAULT_MODEL
from ..errors import UsageError
from ..model.quality import QUALITY_MAX, QUALITY_MIN
from ..training.config import TrainConfig
from .app import ForceOpt, ModelOpt, app, err, examples, guard, out

TRAIN_HELP = ("Train the variable-rate model (lambda sampled per crop over the whole quality range).\n\n"
              "Ctrl-C (or SIGTERM) stops after the current step with a checkpoint, as --max-minutes does; the same "
              "command resumes. A second Ctrl-C stops at once.\n\n" + examples(
                  "clc train ../shared/data/train --out runs/full",
                  "clc train photos/ --init src/clccodec/shipped/clc-full.pt --steps 5000",
                  "torchrun --nproc_per_node 8 -m clccodec train photos/ --out runs/ddp --batch 16"))


def _option_type(f: dataclasses.Field, hint: Any) -> Any:
    """The command-line type of a TrainConfig field: X | None -> Optional[X], paths as Path."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if f.metadata.get("path"):
        base = Path
    return Optional[base] if optional else base


def _parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(TrainConfig)
    params = [inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
        Path, typer.Argument(help="Folder of training photos (never Kodak: it is a test set).", metavar="DIR")])]
    for f in dataclasses.fields(TrainConfig):
        if "help" not in f.metadata:
            continue  # a library-only setting
        meta = {k: v for k, v in f.metadata.items() if k not in ("help", "path", "flag")}
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        opt = typer.Option(flag, help=f.metadata["help"], **meta)
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                        annotation=Annotated[_option_type(f, hints[f.name]), opt]))
    return params


def train(**options: Any) -> None:
    def go() -> None:
        from ..training.trainer import train as run_training

        cfg = TrainConfig(**{k: str(v) if isinstance(v, Path) else v for k, v in options.items()})
        stopped = run_training(cfg)
        if stopped in ("SIGINT", "SIGTERM"):  # the shell's convention: 128 + the signal's number
            err.print(f"clc: stopped by {stopped}; checkpoint saved in {Path(cfg.out) / 'last.pt'} (the same command "
                      "resumes)", markup=False)
            raise typer.Exit(128 + int(getattr(signal, stopped)))

    guard(go)


train.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}
train.__doc__ = TRAIN_HELP
app.command(no_args_is_help=True)(train)
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


@app.command("export-onnx", no_args_is_help=True)
def export_onnx(
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.", show_default=False)],
    model: ModelOpt = None,
    quality: Annotated[Optional[float], typer.Option(
        "--quality", "-q", min=QUALITY_MIN, max=QUALITY_MAX, help="Export the latent this quality codes (rate "
        "scales and gains folded in); default: the plain analysis that the dictionaries and the retrieval use.",
        show_default=False)] = None,
    force: ForceOpt = False,
) -> None:
    """Export the encoder's analysis transform g_a as an ONNX model (the one the encoder runs in ONNX Runtime).

    Input "x": (N, 3, H, W) float32 RGB in [0, 1], H and W multiples of 16. Output "y": the latent (N, C, H/16,
    W/16), unrounded.

    Example: clc export-onnx -o analysis-q3.onnx --quality 3
    """

    def go() -> None:
        from ..defaults import default_model_path
        from ..encoding.numpy_encoder import export_onnx

        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        coded = export_onnx(model or default_model_path(), output, quality)
        out.print(f"{output}: g_a" + (f" at quality {coded:g}" if coded is not None else " (plain)"), markup=False)

    guard(go)
