"""`clc encode` and `clc decode`: one model load per batch, one line per file."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from ..container import DEFAULT_REFS, MAX_REFS
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
            res = codec.encode_full(read_input(job.src) if job.src == "-" else job.src, quality, refs)
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
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Decode .clc files to images.

    Examples: clc decode photo.clc -o photo.png | clc decode out/*.clc -o decoded/ | clc decode - -o - < a.clc > a.png
    | clc decode photo.clc -o photo.png --exact
    """

    def go() -> None:
        from ..imageio import encode_image, output_format, to_image

        jobs = plan_outputs(inputs, output, ".png")
        for j in jobs:
            output_format(None if j.dst == "-" else j.dst)
        refuse_existing_single_output(jobs, force)
        codec = make_codec(model, dictionary, device)

        def work(job: Job) -> str:
            t = time.perf_counter()
            pixels, gray = codec.decode_pixels(read_input(job.src), exact)
            fmt = output_format(None if job.dst == "-" else job.dst)
            write_output(job.dst, encode_image(to_image(pixels, gray), fmt), force)
            return f"{job.src} -> {job.dst}  {pixels.shape[1]}x{pixels.shape[0]}  {time.perf_counter() - t:.2f} s"

        run_batch(jobs, work, quiet, "Decode")

    guard(go)
