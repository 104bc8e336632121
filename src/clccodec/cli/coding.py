"""`clc encode` and `clc decode`: one model load per batch, one line per file."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from ..container import DEFAULT_REFS, MAX_REFS
from ..errors import UsageError
from ..quality import DEFAULT_QUALITY, QUALITY_MAX, QUALITY_MIN
from .app import DeviceOpt, DictOpt, ExactOpt, ForceOpt, ModelOpt, QuietOpt, app, guard, make_codec
from .batch import Job, plan_outputs, read_input, refuse_existing_single_output, run_batch, write_output


@app.command(no_args_is_help=True)
def encode(
    inputs: Annotated[list[str], typer.Argument(help="Image files (PNG, JPEG, WebP, TIFF, BMP, ...), or '-' "
                                                "for stdin.", show_default=False, metavar="IMAGE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output file, folder (for many "
                                                  "inputs), or '-' for stdout. Default: beside each input, "
                                                  "with .clc.", show_default=False)] = None,
    quality: Annotated[float, typer.Option("--quality", "-q", help=f"{QUALITY_MIN:g} (smallest) .. "
                                           f"{QUALITY_MAX:g} (best); fractions allowed.", min=QUALITY_MIN,
                                           max=QUALITY_MAX)] = DEFAULT_QUALITY,
    refs: Annotated[int, typer.Option("--refs", help="Dictionary references per image (0 disables).",
                                      min=0, max=MAX_REFS)] = DEFAULT_REFS,
    slices: Annotated[Optional[int], typer.Option("--slices", help="Write only the first K latent slices: a "
                                                  "smaller preview file (0 = the hyper-latent alone). "
                                                  "Default: all.", min=0, show_default=False)] = None,
    strip: Annotated[bool, typer.Option("--strip", help="Leave out the source's ICC profile, EXIF and XMP "
                                        "(kept by default).")] = False,
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
        from ..container import read_info

        jobs = plan_outputs(inputs, output, ".clc")
        refuse_existing_single_output(jobs, force)
        codec = make_codec(model, dictionary, device)

        def work(job: Job) -> str:
            t = time.perf_counter()
            res = codec.encode_full(read_input(job.src) if job.src == "-" else job.src, quality, refs,
                                    slices=slices, strip=strip)
            write_output(job.dst, res.data, force)
            info = read_info(res.data)
            notes = "".join(f"  [{n}]" for n in res.notes)
            return (f"{job.src} -> {job.dst}  {info['width']}x{info['height']}  {len(res.data)} bytes  "
                    f"{info['bpp']:.4f} bpp  {time.perf_counter() - t:.2f} s{notes}")

        run_batch(jobs, work, quiet, "Encode")

    guard(go)


@app.command(no_args_is_help=True)
def decode(
    inputs: Annotated[list[str], typer.Argument(help=".clc files, or '-' for stdin.", show_default=False, metavar="FILE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output image (format from the "
                                                  "extension: png, ppm, bmp, tif, webp), folder, or '-' for "
                                                  "stdout (PNG). Default: beside each input, with .png.",
                                                  show_default=False)] = None,
    exact: ExactOpt = False,
    partial: Annotated[bool, typer.Option("--partial", help="Decode a truncated file from its complete "
                                          "slices (missing ones are predicted); without it a truncated file is "
                                          "an error.")] = False,
    detail: Annotated[str, typer.Option("--detail", help="Slices a file lacks: 'mean' (their prediction: "
                                        "best PSNR) or 'sample' (drawn with --seed: texture instead of blur, a "
                                        "perceptual option).")] = "mean",
    seed: Annotated[int, typer.Option("--seed", help="Seed of --detail sample.", min=0)] = 0,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Decode .clc files to images (restoring the source's ICC profile, EXIF and XMP in PNG, JPEG, WebP, TIFF).

    Examples: clc decode photo.clc -o photo.png | clc decode out/*.clc -o decoded/ | clc decode - -o - < a.clc > a.png
    | clc decode photo.clc -o photo.png --exact
    """

    def go() -> None:
        from ..imageio import encode_image, output_format, to_image

        if detail not in ("mean", "sample"):  # progressive.DETAIL_MODES (not imported: it needs torch)
            raise UsageError(f"--detail must be 'mean' or 'sample', got {detail!r}")
        jobs = plan_outputs(inputs, output, ".png")
        for j in jobs:
            output_format(None if j.dst == "-" else j.dst)
        refuse_existing_single_output(jobs, force)
        codec = make_codec(model, dictionary, device)

        def work(job: Job) -> str:
            t = time.perf_counter()
            r = codec.decode_full(read_input(job.src), exact=exact, partial=partial, detail=detail, seed=seed)
            pixels = r.pixels
            fmt = output_format(None if job.dst == "-" else job.dst)
            write_output(job.dst, encode_image(to_image(pixels, r.grayscale), fmt, r.metadata), force)
            used = ("" if r.slices_used == r.slices_total else
                    f"  {r.slices_used} of {r.slices_total} slices{' (truncated file)' if r.truncated else ''}, "
                    f"the rest {'sampled' if detail == 'sample' else 'predicted'}")
            return (f"{job.src} -> {job.dst}  {pixels.shape[1]}x{pixels.shape[0]}  {time.perf_counter() - t:.2f} s"
                    f"{used}")

        run_batch(jobs, work, quiet, "Decode")

    guard(go)
