"""The `clc` command: a thin layer over clccodec.api that parses options and reports with rich."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import ClcError, UsageError

err = Console(stderr=True, highlight=False, soft_wrap=True)  # one-line errors stay one line
out = Console(highlight=False, soft_wrap=True)  # JSON lines must not be wrapped

app = typer.Typer(
    name="clc",
    help="clc: a learned image codec (Conditional Latent Coding) with dictionary references.\n\n"
    "Examples:\n\n"
    "  clc encode photo.png -o photo.clc --quality 3\n\n"
    "  clc decode photo.clc -o out.png\n\n"
    "  clc info photo.clc\n\n"
    "  clc build-dict ./photos -o my.clcdict\n\n"
    "  clc encode *.png -o compressed/        (batch, with a progress bar)\n\n"
    "  cat photo.png | clc encode - -o - > photo.clc",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Weights file (default: the shipped model, "
                                                  "or $CLC_MODEL).", show_default=False)]
DictOpt = Annotated[Optional[str], typer.Option("--dict", help="Reference dictionary .clcdict (default: the "
                                                "shipped one, or $CLC_DICTIONARY; 'none' disables).",
                                                show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="Print errors only.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"clc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    pass


def fail(msg: str, code: int = 1) -> None:
    """One line on stderr, no traceback."""
    err.print(f"clc: error: {msg}", markup=False, soft_wrap=True)  # one line, never wrapped at 80 columns
    raise typer.Exit(code)


def _dictionary_arg(value: Optional[str]):
    if value is None:
        return None
    if value.lower() == "none":
        return False
    return Path(value)


def _codec(model: Optional[Path], dictionary: Optional[str], device: str):
    from .api import Codec

    return Codec(model, _dictionary_arg(dictionary), device)


# -- batch plumbing shared by encode and decode -------------------------------------------------------------------


@dataclass
class Job:
    src: str  # a path or "-"
    dst: str  # a path or "-"


@dataclass
class BatchReport:
    done: int = 0
    failed: list[tuple[str, str, int]] = field(default_factory=list)


def plan_outputs(inputs: list[str], output: Optional[str], suffix: str) -> list[Job]:
    """Where each input goes: -o FILE (one input), -o DIR/ (many), '-' for stdout, or beside the input."""
    if not inputs:
        raise UsageError("no input files")
    if len(inputs) > 1 and "-" in inputs:
        raise UsageError("'-' (stdin) cannot be mixed with other inputs")
    many = len(inputs) > 1
    if output == "-" and many:
        raise UsageError("only one input can be written to stdout")
    out_dir = None
    if output is not None and output != "-":
        p = Path(output)
        if many or p.is_dir() or output.endswith(os.sep):
            out_dir = p
            out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for src in inputs:
        if output == "-" or (src == "-" and output is None):
            dst = "-"
        elif out_dir is not None:
            if src == "-":
                raise UsageError("stdin input needs an output file name, not a folder")
            dst = str(out_dir / (Path(src).stem + suffix))
        elif output is not None:
            dst = output
        else:
            dst = str(Path(src).with_suffix(suffix))
        if dst != "-" and src != "-" and Path(dst).resolve() == Path(src).resolve():
            raise UsageError(f"{src}: output would overwrite the input")
        jobs.append(Job(src, dst))
    dsts = [j.dst for j in jobs if j.dst != "-"]
    if len(set(dsts)) != len(dsts):
        raise UsageError("two inputs would write the same output file (same name in different folders?)")
    return jobs


def read_input(src: str) -> bytes:
    if src == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{src}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{src}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{src}: permission denied") from None


def write_output(dst: str, data: bytes, force: bool) -> None:
    from .api import write_atomic

    if dst == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomic(dst, data, force)
    except PermissionError:
        raise UsageError(f"{dst}: permission denied") from None
    except FileNotFoundError:
        raise UsageError(f"{dst}: folder does not exist") from None


def run_batch(jobs: list[Job], work: Callable[[Job], str], quiet: bool, verb: str) -> None:
    """Run every job; a failure is reported and the others still run. Exit code: 0, or the first failure's."""
    report = BatchReport()
    progress = None
    if len(jobs) > 1 and not quiet:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=False)
        task = progress.add_task(verb, total=len(jobs))
        progress.start()
    try:
        for job in jobs:
            try:
                line = work(job)
                report.done += 1
                if not quiet:
                    (progress.console if progress else err).print(line, markup=False)
            except ClcError as e:
                report.failed.append((job.src, str(e), e.exit_code))
                (progress.console if progress else err).print(f"clc: error: {job.src}: {e}", markup=False)
            if progress:
                progress.advance(task)
    finally:
        if progress:
            progress.stop()
    if len(jobs) > 1 and not quiet:
        err.print(f"{report.done} {verb.lower()}d, {len(report.failed)} failed", markup=False)
    if report.failed:
        raise typer.Exit(report.failed[0][2] if len(jobs) == 1 else 1)


def _guard(fn: Callable[[], None]) -> None:
    """Turn library errors into one line + exit code; never show a traceback unless CLC_DEBUG is set."""
    try:
        fn()
    except typer.Exit:
        raise
    except ClcError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        err.print("clc: interrupted", markup=False)
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - last line of defence: a bug must still not print a traceback
        if os.environ.get("CLC_DEBUG"):
            raise
        fail(f"internal error: {e.__class__.__name__}: {e} (set CLC_DEBUG=1 for a traceback)", 70)


def _refuse_existing_single_output(jobs: list[Job], force: bool) -> None:
    """One output that exists is a usage error before the model loads; in a batch, each existing output is
    that file's failure (the others are still written)."""
    if len(jobs) == 1 and jobs[0].dst != "-" and Path(jobs[0].dst).exists() and not force:
        raise UsageError(f"{jobs[0].dst} exists (use --force to overwrite)")


# -- commands -----------------------------------------------------------------------------------------------------


@app.command(no_args_is_help=True)
def encode(
    inputs: Annotated[list[str], typer.Argument(help="Image files (PNG, JPEG, WebP, TIFF, BMP, ...), or '-' "
                                                "for stdin.", show_default=False, metavar="IMAGE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output file, folder (for many "
                                                  "inputs), or '-' for stdout. Default: beside each input, "
                                                  "with .clc.", show_default=False)] = None,
    quality: Annotated[float, typer.Option("--quality", "-q", help="1 (smallest) .. 8 (best); fractions "
                                           "allowed.", min=1.0, max=8.0)] = 3.0,
    refs: Annotated[int, typer.Option("--refs", help="Dictionary references per image (0 disables).",
                                      min=0, max=64)] = 3,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Encode images to .clc files.

    Examples: clc encode photo.png -o photo.clc -q 3 | clc encode *.jpg -o out/ | clc encode - -o - < a.png > a.clc
    """

    def go() -> None:
        jobs = plan_outputs(inputs, output, ".clc")
        _refuse_existing_single_output(jobs, force)
        codec = _codec(model, dictionary, device)

        def work(job: Job) -> str:
            t = time.perf_counter()
            res = codec.encode_full(read_input(job.src) if job.src == "-" else job.src, quality, refs)
            write_output(job.dst, res.data, force)
            from .api import read_info

            info = read_info(res.data)
            notes = "".join(f"  [{n}]" for n in res.notes)
            return (f"{job.src} -> {job.dst}  {info['width']}x{info['height']}  {len(res.data)} bytes  "
                    f"{info['bpp']:.4f} bpp  {time.perf_counter() - t:.2f} s{notes}")

        run_batch(jobs, work, quiet, "Encode")

    _guard(go)


@app.command(no_args_is_help=True)
def decode(
    inputs: Annotated[list[str], typer.Argument(help=".clc files, or '-' for stdin.", show_default=False, metavar="FILE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output image (format from the "
                                                  "extension: png, ppm, bmp, tif, webp), folder, or '-' for "
                                                  "stdout (PNG). Default: beside each input, with .png.",
                                                  show_default=False)] = None,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Decode .clc files to images.

    Examples: clc decode photo.clc -o photo.png | clc decode out/*.clc -o decoded/ | clc decode - -o - < a.clc > a.png
    """

    def go() -> None:
        from .imageio import encode_image, output_format, to_image

        jobs = plan_outputs(inputs, output, ".png")
        for j in jobs:
            output_format(None if j.dst == "-" else j.dst)
        _refuse_existing_single_output(jobs, force)
        codec = _codec(model, dictionary, device)

        def work(job: Job) -> str:
            t = time.perf_counter()
            pixels, gray = codec.decode_pixels(read_input(job.src))
            fmt = output_format(None if job.dst == "-" else job.dst)
            write_output(job.dst, encode_image(to_image(pixels, gray), fmt), force)
            return f"{job.src} -> {job.dst}  {pixels.shape[1]}x{pixels.shape[0]}  {time.perf_counter() - t:.2f} s"

        run_batch(jobs, work, quiet, "Decode")

    _guard(go)


@app.command(no_args_is_help=True)
def info(
    files: Annotated[list[str], typer.Argument(help=".clc or .clcdict files (or '-' for stdin).",
                                               show_default=False, metavar="FILE")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what a .clc file holds: size, quality, model and dictionary ids, references, bytes per part, bpp.

    Also describes .clcdict reference dictionaries (K, crop size, feature extractor, model id, size, provenance).

    Examples: clc info photo.clc | clc info dictionaries/default.clcdict
    """

    def go() -> None:
        import json

        from .api import read_info

        failures = 0
        for f in files:
            try:
                raw = read_input(f)
                inf = _dictionary_info(raw) if _is_dictionary(raw) else read_info(raw)
            except ClcError as e:
                err.print(f"clc: error: {f}: {e}", markup=False)
                failures += 1
                last = e.exit_code
                continue
            if json_out:
                out.print(json.dumps({"file": f} | inf), markup=False)
                continue
            t = Table(title=f, show_header=False, title_justify="left")
            t.add_column(style="bold")
            t.add_column()
            for k, v in inf.items():
                t.add_row(k, _info_cell(k, v))
            out.print(t)
        if failures:
            raise typer.Exit(last if len(files) == 1 else 1)

    _guard(go)


@app.command(no_args_is_help=True)
def train(
    data: Annotated[Path, typer.Argument(help="Folder of training photos (never Kodak: it is a test set).", metavar="DIR")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints (last.pt, best.pt) and log.jsonl. "
                                      "An existing run resumes exactly where it stopped.")] = Path("runs/full"),
    config: Annotated[str, typer.Option("--config", help="Model size: full or tiny.")] = "full",
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from these weights (e.g. "
                                                 "models/clc-full.pt) instead of random.", show_default=False)] = None,
    steps: Annotated[int, typer.Option("--steps", help="Total steps to reach.")] = 60000,
    batch: Annotated[int, typer.Option("--batch", help="Crops per step (per GPU under torchrun).")] = 8,
    crop: Annotated[int, typer.Option("--crop", help="Training crop size.")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (drops 10x at --lr-decay-at).")] = 2e-4,
    lr_decay_at: Annotated[float, typer.Option("--lr-decay-at", help="Fraction of --steps after which the "
                                               "learning rate drops 10x.")] = 0.9,
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule: step (10x drop at "
                                          "--lr-decay-at) or cosine (to lr/100 at --steps).")] = "step",
    warmup: Annotated[int, typer.Option("--warmup", help="Linear learning-rate warm-up steps.")] = 0,
    ema: Annotated[float, typer.Option("--ema", help="Decay of an exponential moving average of the weights, "
                                       "validated and saved as best.pt (e.g. 0.999; 0: off).")] = 0.0,
    quality: Annotated[Optional[float], typer.Option("--quality", help="Train one quality only (a single "
                                                     "lambda); default: every quality.", show_default=False)] = None,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate (held-out photos) every N steps.")] = 2000,
    max_minutes: Annotated[float, typer.Option("--max-minutes", help="Stop with a checkpoint after this "
                                               "much time (0: no limit).")] = 0.0,
    device: DeviceOpt = "auto",
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16 autocast for the transforms "
                                                "[default: on where bf16 is native: CUDA, AVX-512 BF16/AMX CPUs]",
                                                show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the variable-rate model (lambda sampled per crop over the whole quality range).

    Examples: clc train ../shared/data/train --out runs/full | clc train photos/ --init models/clc-full.pt --steps 5000
    | torchrun --nproc_per_node 8 -m clccodec train photos/ --out runs/ddp --batch 16
    """

    def go() -> None:
        from .training.trainer import TrainConfig
        from .training.trainer import train as run_training

        run_training(TrainConfig(data=str(data), out=str(out), config=config, init=str(init) if init else None,
                                 steps=steps, batch=batch, crop=crop, lr=lr, lr_decay_at=lr_decay_at,
                                 schedule=schedule, warmup=warmup, ema=ema, quality=quality, val_every=val_every, max_minutes=max_minutes, device=device, amp=amp, seed=seed))

    _guard(go)


@app.command("export-weights", no_args_is_help=True)
def export_weights(
    checkpoint: Annotated[Path, typer.Argument(help="Trainer checkpoint (best.pt or last.pt).", metavar="CHECKPOINT")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write.")] = Path(
        "models/clc-full.pt"),
    force: ForceOpt = False,
) -> None:
    """Snap a checkpoint onto the coder's fixed-point grids and write a shipped weights file.

    Example: clc export-weights runs/full/best.pt -o models/clc-full.pt --force
    """

    def go() -> None:
        from .training.export import export_checkpoint

        if not checkpoint.exists():
            raise UsageError(f"{checkpoint}: no such file")
        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        mid = export_checkpoint(checkpoint, output)
        out.print(f"{output}: model id {mid.hex()}", markup=False)

    _guard(go)


@app.command("eval", no_args_is_help=True)
def eval_cmd(
    inputs: Annotated[list[str], typer.Argument(help="A folder of images (e.g. Kodak) and/or image files.",
                                                show_default=False, metavar="DIR")],
    quality: Annotated[str, typer.Option("--quality", "-q", help="Qualities: 1-8, 1,2,3, 1-4,6 or 1-3:0.5.")] = "1-8",
    refs: Annotated[int, typer.Option("--refs", help="Dictionary references per image (M; 0 disables).",
                                      min=0, max=64)] = 3,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write results (CompressAI layout + per-image "
                                                      "records, BD-rates, classical codecs) to this JSON file.",
                                                      show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the RD plot (PSNR and MS-SSIM vs bpp) to "
                                                 "this PNG file.", show_default=False)] = None,
    codecs: Annotated[str, typer.Option("--codecs", help="Classical codecs run live through Pillow on the same "
                                        "images: jpeg, jpeg444, webp, avif, avif444, jpeg2000, 'default' "
                                        "(jpeg,webp,avif,avif444), 'all' or 'none'.")] = "default",
    anchor_list: Annotated[str, typer.Option("--anchors", help="Published/measured curves for the BD table and "
                                             "plot: 'default', 'all', 'none' or keys such as vtm,bpg,elic.")]
    = "default",
    keep: Annotated[Optional[Path], typer.Option("--keep", help="Also write every .clc file into this folder.",
                                                 show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N images (sorted by name).",
                                                 min=1, show_default=False)] = None,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rate-distortion benchmark on real files: bpp from the .clc bytes, PSNR and MS-SSIM on the decoded 8-bit
    RGB, encode/decode seconds, BD-rate vs VTM and the other anchors, classical codecs side by side.

    Examples:

      clc eval ../shared/data/kodak --json rd.json --plot rd.png

      clc eval ./photos -q 2,4,6 --codecs jpeg,avif --limit 5

      clc eval ./kodak -q 1-8 --refs 0 --anchors vtm,bpg,elic --keep out/

    BD-rate: cubic Bjøntegaard fit of log-rate vs PSNR over the shared PSNR range, also restricted to points
    <= 1 bpp (how the anchor ladder is quoted). Anchors are Kodak averages: compare against them on all 24
    Kodak images.
    """

    def go() -> None:
        from .evaluation import anchors as anchor_mod
        from .evaluation import classical as classical_mod
        from .evaluation import runner

        qualities = runner.parse_qualities(quality)
        try:
            live = classical_mod.parse_codecs(codecs)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        keys = _anchor_keys(anchor_list, anchor_mod)
        for p, what in ((json_path, "--json"), (plot, "--plot")):
            if p is not None:
                if p.exists() and not force:
                    raise UsageError(f"{p} exists (use --force to overwrite)")
                if not p.parent.is_dir():
                    raise UsageError(f"{what} {p}: folder does not exist")
        files = runner.find_images(inputs, limit)
        codec = _codec(model, dictionary, device)
        images = runner.load_images(files)
        source = ", ".join(inputs)
        total = runner.count_steps(len(images), qualities, live)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=quiet) as progress:
            task = progress.add_task("eval", total=total)

            def step(what: str) -> None:
                progress.update(task, advance=1, description=what)

            report = runner.evaluate(images, source, codec, qualities, refs, live, keys, keep, step)
        if not quiet:
            _print_eval(report)
        from .api import write_atomic

        if json_path is not None:
            import json

            write_atomic(json_path, (json.dumps(report.to_json(), indent=1) + "\n").encode(), force=True)
            if not quiet:
                err.print(f"wrote {json_path}", markup=False)
        if plot is not None:
            from .evaluation.plots import plot_rd

            plot_anchors = [c for c in report.anchors if c.key in anchor_mod.DEFAULT_PLOT] or report.anchors
            title = "Kodak" if report.is_full_kodak else f"{len(report.images)} images"
            png = plot_rd([report.clc.curve()], [r.curve() for r in report.classical], plot_anchors, title)
            write_atomic(plot, png, force=True)
            if not quiet:
                err.print(f"wrote {plot}", markup=False)

    _guard(go)


# -- reference dictionaries ---------------------------------------------------------------------------------------


def _is_dictionary(data: bytes) -> bool:
    from .dictionary.clcdict import looks_like_clcdict

    return looks_like_clcdict(data)


def _dictionary_info(data: bytes) -> dict:
    from .dictionary.store import ReferenceDictionary

    return ReferenceDictionary.from_bytes(data).info()  # the caller prefixes errors with the name


def _info_cell(key: str, value: object) -> str:
    if isinstance(value, float) and key == "bpp":
        return f"{value:.4f}"
    if key == "sources" and isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:5])
        return shown + (f", ... ({len(value) - 5} more)" if len(value) > 5 else "")
    if key == "bytes" and isinstance(value, int) and value >= 1 << 20:
        return f"{value} ({value / (1 << 20):.1f} MiB)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class _RichReporter:
    """Rich progress bars for build-dict: one line per stage."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, transient=False, disable=quiet)
        self.task = None

    def __enter__(self) -> "_RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()
        self.progress.stop()

    def _finish(self) -> None:
        if self.task is not None:
            t = self.progress.tasks[-1]
            self.progress.update(self.task, total=t.total or 1, completed=t.total or 1)

    def stage(self, name: str, total: int | None = None) -> None:
        self._finish()
        self.task = self.progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def note(self, msg: str) -> None:
        if not self.quiet:
            self.progress.console.print(f"clc: note: {msg}", markup=False)


@app.command("build-dict", no_args_is_help=True)
def build_dict(
    folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively; PNG, JPEG, WebP, ...).",
                                           show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .clcdict file to write.",
                                         show_default=False)],
    clusters: Annotated[int, typer.Option("--clusters", "-k", help="Entries K (MiniBatchKMeans clusters; with "
                                          "fewer crops than K every crop becomes an entry).", min=1)] = 3000,
    crop: Annotated[int, typer.Option("--crop", help="Crop size in pixels (a multiple of 16).", min=64)] = 256,
    stride: Annotated[Optional[int], typer.Option("--stride", help="Crop grid step in pixels (default: the crop "
                                                  "size, i.e. non-overlapping).", min=16, show_default=False)] = None,
    features: Annotated[str, typer.Option("--features", help="Retrieval features: latent (the codec's own "
                                          "analysis latent, no download) or resnet50 (needs --weights).")] = "latent",
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Local torchvision ResNet-50 state dict "
                                                    "for --features resnet50 (nothing is downloaded).",
                                                    show_default=False)] = None,
    glob: Annotated[Optional[str], typer.Option("--glob", help="Only files whose name matches this pattern, "
                                                "e.g. 'unsplash_*.png'.", show_default=False)] = None,
    license_note: Annotated[Optional[str], typer.Option("--license", help="License/provenance note stored in "
                                                        "the file (default: 'unspecified').",
                                                        show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of PCA and clustering (same inputs + seed: same "
                                      "file).")] = 0,
    batch: Annotated[int, typer.Option("--batch", help="Crops per forward pass.", min=1)] = 16,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build a reference dictionary (.clcdict) from a folder of images, for one model.

    Crops every image on a grid, describes each crop by spatial-pyramid-pooled features, reduces them with PCA
    (256 dims), clusters them into K entries (MiniBatchKMeans; the crop nearest each centroid represents its
    cluster) and stores each entry's search key and its int8 reference values, bound to the model's id, with
    provenance (file names, sha256, license note).

    Examples:

      clc build-dict ./photos -o photos.clcdict

      clc build-dict ../shared/data/train --glob 'unsplash_*.png' -o default.clcdict --license 'Unsplash License'

      clc build-dict ./photos -o r50.clcdict --features resnet50 --weights resnet50.pth -k 1000 --stride 128
    """

    def go() -> None:
        from .api import default_model_path, resolve_device
        from .dictionary.build import DEFAULT_LICENSE, BuildOptions, build_dictionary
        from .model.weights import load_weights

        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        if not output.parent.is_dir():
            raise UsageError(f"{output.parent}: folder does not exist")
        opts = BuildOptions(clusters=clusters, crop=crop, stride=stride, features=features, weights=weights,
                            seed=seed, batch=batch, license=license_note or DEFAULT_LICENSE, pattern=glob)
        opts.check()
        dev = resolve_device(device)
        net = load_weights(model or default_model_path(), dev)
        t = time.perf_counter()
        with _RichReporter(quiet) as rep:
            d, report = build_dictionary(folder, net, opts, rep, dev)
            rep.stage("Writing", 1)
            size = d.save(output, force)
            rep.advance()
        for s in report.skipped:
            if not quiet:
                err.print(f"clc: note: skipped {s}", markup=False)
        if not quiet:
            c, h, w = d.value_shape
            err.print(f"{output}: K={len(d)} entries from {report.crops} crops of {report.images} images, "
                      f"values {c}x{h}x{w} int8, {size} bytes, id {d.id_hex}, model {d.model_id.hex()}, "
                      f"{time.perf_counter() - t:.1f} s", markup=False)

    _guard(go)


def _anchor_keys(spec: str, anchor_mod) -> list[str]:
    s = spec.strip().lower()
    if s in ("", "none"):
        return []
    keys: list[str] = []
    for part in s.split(","):
        part = part.strip()
        if part == "default":
            keys += anchor_mod.DEFAULT_BD
        elif part == "all":
            keys += anchor_mod.names()
        elif part in anchor_mod.ALL:
            keys.append(part)
        elif part:
            raise UsageError(f"unknown anchor '{part}' (known: {', '.join(anchor_mod.names())}, default, all, none)")
    return list(dict.fromkeys(keys))


def _print_eval(report) -> None:
    from rich.markup import escape

    run = report.clc
    a = run.averages()
    t = Table(title=escape(f"{run.name} on {report.source} ({len(report.images)} images)"), title_justify="left")
    for col in ("quality", "bpp", "PSNR dB", "MS-SSIM", "encode s", "decode s"):
        t.add_column(col, justify="right")
    for i, q in enumerate(run.settings_done()):
        t.add_row(f"{q:g}", f"{a['bpp'][i]:.4f}", f"{a['psnr-rgb'][i]:.3f}", f"{a['ms-ssim-rgb'][i]:.5f}",
                  f"{a['encoding_time'][i]:.3f}", f"{a['decoding_time'][i]:.3f}")
    out.print(t)
    if report.classical:
        t = Table(title="Classical codecs, live through Pillow on the same images (times: mean per image)",
                  title_justify="left")
        for col in ("codec", "points", "bpp", "PSNR dB", "encode s", "decode s"):
            t.add_column(col, justify="right" if col != "codec" else "left")
        for r in report.classical:
            c = r.averages()
            t.add_row(r.key, str(len(c["bpp"])), f"{min(c['bpp']):.3f}-{max(c['bpp']):.3f}",
                      f"{min(c['psnr-rgb']):.2f}-{max(c['psnr-rgb']):.2f}",
                      f"{sum(c['encoding_time']) / len(c['bpp']):.4f}", f"{sum(c['decoding_time']) / len(c['bpp']):.4f}")
        out.print(t)
    reasons: dict[str, None] = {}

    def cell(r) -> str:
        if r is None:
            return "-"
        if r.value is None:
            reasons[r.reason] = None
            return "n/a"
        return f"{r.value:+.1f} %"

    if report.bd:
        t = Table(title=escape(f"BD-rate of {run.name} against each curve (negative = fewer bits)"),
                  title_justify="left")
        for col in ("against", "PSNR <=1bpp", "PSNR all", "MS-SSIM all", "it vs VTM"):
            t.add_column(col, justify="right" if col != "against" else "left")
        for r in report.bd:
            t.add_row(escape(r.label), cell(r.vs_le1), cell(r.vs_all), cell(r.vs_msssim), cell(r.ref_vs_vtm))
        out.print(t)
        out.print("(PSNR <=1bpp: points above 1 bpp dropped from both curves; MS-SSIM in dB; 'it vs VTM': that "
                  "curve's own BD-rate vs VTM, PSNR <=1bpp)", markup=False)
        for reason in reasons:
            out.print(f"n/a: {reason}", markup=False)
    head = report.headline()
    if head is not None:
        out.print(f"BD-rate vs VTM (PSNR, <= 1 bpp): {cell(head)}", markup=False)
    for n in report.notes:
        err.print(f"note: {n}", markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
