"""`clc encode` and `clc decode`: one model load per batch, one line per file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_EFFORT, DEFAULT_NEAR_LOSSLESS_QUALITY, DEFAULT_QUALITY, DEFAULT_REFS, NEAR_MAX
from ..format.container import MAX_REFS
from ..errors import TargetMissedError, UsageError
from ..encoding.effort import EFFORT_MAX, EFFORT_MIN, FIRST_REFINING_EFFORT, NUMPY_EFFORT_MAX
from ..model.quality import QUALITY_MAX, QUALITY_MIN
from .app import EXIT_CODES_HELP, AddressOpt, DeviceOpt, DictOpt, EngineOpt, ExactOpt, ForceOpt, ManifestOpt, \
    ModelOpt, QuietOpt, WorkerCpusOpt, WorkersOpt, app, dictionary_arg, err, examples, guard, make_encoder, \
    make_decoder
from .batch import Job, SlowWorkStatus, check_jobs, plan_outputs, read_input, refinement_progress, run_batch, \
    write_output

ENCODE_HELP = "Encode images to .clc files (alpha and the source's ICC profile, EXIF and XMP kept).\n\n" + examples(
    "clc encode photo.png -o photo.clc -q 3", "clc encode *.jpg -o out/", "clc encode - -o - < a.png > a.clc",
    "clc encode photo.png --effort 9", "clc encode photo.png --target-bpp 0.5",
    "clc encode photo.png --target-size 50000 --strict-target",
    "clc encode photos/ s3://bucket/more/ -o s3://bucket/clc/ --engine ray --address auto")
DECODE_HELP = ("Decode .clc files to images (restoring alpha, and the source's ICC profile, EXIF and XMP in PNG, "
               "JPEG, WebP, AVIF, TIFF).\n\n") + examples(
    "clc decode photo.clc -o photo.png", "clc decode out/*.clc -o decoded/", "clc decode - -o - < a.clc > a.png",
    "clc decode photo.clc -o photo.jpg -Q 90", "clc decode photo.clc -o photo.png --exact",
    "clc decode clc/ -o decoded/ --engine ray")


@app.command(no_args_is_help=True, help=ENCODE_HELP, epilog=EXIT_CODES_HELP)
def encode(
    inputs: Annotated[list[str], typer.Argument(help="Image files (PNG, JPEG, WebP, TIFF, BMP, ...), or '-' "
                                                "for stdin.", show_default=False, metavar="IMAGE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="PATH", help="Output file, folder (for many "
                                                  "inputs), or '-' for stdout. Default: beside each input, "
                                                  "with .clc.", show_default=False)] = None,
    quality: Annotated[Optional[float], typer.Option("--quality", "-q", help=f"{QUALITY_MIN:g} (smallest) .. "
                                                     f"{QUALITY_MAX:g} (best); fractions allowed (below 1: extrapolated). "
                                                     f"[default: {DEFAULT_QUALITY:g}]", min=QUALITY_MIN,
                                                     max=QUALITY_MAX, show_default=False)] = None,
    effort: Annotated[int, typer.Option("--effort", "-e", help=f"Encoder effort {EFFORT_MIN} (fastest) .. "
                                        f"{EFFORT_MAX} (smallest files, about half a minute per 768x512 image "
                                        "on 2 CPU cores at 9): 0 keeps the smaller of the files with and without "
                                        "references, 1-2 choose the reference count by real cost, 3-9 also "
                                        "optimise the latents for the image. Same decoder, same file format.",
                                        min=EFFORT_MIN, max=EFFORT_MAX)] = DEFAULT_EFFORT,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", help="Search the quality for this many "
                                                        "bits per pixel (the closest file).", min=0.0,
                                                        show_default=False)] = None,
    target_size: Annotated[Optional[int], typer.Option("--target-size", help="Search the quality for the "
                                                       "largest file of at most this many bytes.", min=1,
                                                       show_default=False)] = None,
    target_psnr: Annotated[Optional[float], typer.Option("--target-psnr", help="Search the quality for the "
                                                         "smallest file with at least this PSNR (dB, 8-bit RGB, "
                                                         "default decoder).", min=0.0,
                                                         show_default=False)] = None,
    refs: Annotated[int, typer.Option("--refs", help="Dictionary references per image (0 disables). The "
                                      "encoder also codes the file without them and keeps the smaller; with "
                                      "--effort 1 or more it tries fewer (from effort 2 up to 5) and keeps the "
                                      "cheapest by rate and distortion.",
                                      min=0, max=MAX_REFS)] = DEFAULT_REFS,
    slices: Annotated[Optional[int], typer.Option("--slices", help="Write only the first K latent slices: a "
                                                  "smaller preview file (0 = the hyper-latent alone). "
                                                  "Default: all.", min=0, show_default=False)] = None,
    strip: Annotated[bool, typer.Option("--strip", help="Leave out the source's ICC profile, EXIF and XMP "
                                        "(kept by default).")] = False,
    no_alpha: Annotated[bool, typer.Option("--no-alpha", help="Drop the source's alpha channel (kept by default, "
                                           "losslessly).")] = False,
    near_lossless: Annotated[Optional[int], typer.Option("--near-lossless", metavar="N", help="Add a residual layer that "
                                                         "keeps every sample within +-N of the source (0: "
                                                         "lossless), over the lossy layer at --quality [default "
                                                         f"quality with it: {DEFAULT_NEAR_LOSSLESS_QUALITY:g}].",
                                                         min=0, max=NEAR_MAX,
                                                         show_default=False)] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Every sample exact: --near-lossless 0.")] = False,
    strict_target: Annotated[bool, typer.Option("--strict-target", help="A target out of reach is an error (exit "
                                                "6, no output) instead of a warning beside the nearest "
                                                "file.")] = False,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    worker_cpus: WorkerCpusOpt = 1.0,
    manifest: ManifestOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    def go() -> None:
        from ..format.container import read_info
        from ..io.images import IMAGE_SUFFIXES
        from .distributed import check_engine, run_on_ray

        targets = {k: v for k, v in (("--target-bpp", target_bpp), ("--target-size", target_size),
                                     ("--target-psnr", target_psnr)) if v is not None}
        if len(targets) > 1 or (targets and quality is not None):
            given = (["--quality"] if quality is not None else []) + list(targets)
            raise UsageError(f"{' and '.join(given)} cannot be combined: give one of --quality, --target-bpp, "
                             "--target-size, --target-psnr")
        if target_bpp is not None and target_bpp <= 0 or target_psnr is not None and target_psnr <= 0:
            raise UsageError("a target must be a positive number")
        if lossless and near_lossless not in (None, 0):
            raise UsageError(f"--lossless and --near-lossless {near_lossless} contradict each other")
        near = 0 if lossless else near_lossless
        if near is not None and (targets or slices is not None):
            raise UsageError(f"{'--lossless' if lossless else '--near-lossless'} cannot be combined with "
                             f"{', '.join(targets) if targets else '--slices'}")
        if check_engine(engine, inputs, output, address=address, workers=workers, worker_cpus=worker_cpus,
                        manifest=manifest):
            return run_on_ray("encode", inputs, output, quiet, quality=quality, refs=refs, effort=effort,
                              target_bpp=target_bpp, target_size=target_size, target_psnr=target_psnr,
                              strict_target=strict_target, slices=slices, strip=strip, alpha=not no_alpha,
                              near_lossless=near, model=model, dictionary=dictionary_arg(dictionary),
                              device=device, address=address, workers=workers, worker_cpus=worker_cpus,
                              force=force, manifest=manifest)
        jobs = plan_outputs(inputs, output, ".clc")
        check_jobs(jobs, force)
        image_suffix = [j.dst for j in jobs if Path(j.dst).suffix.lower() in IMAGE_SUFFIXES]
        if image_suffix and not quiet:
            err.print(f"clc: warning: {image_suffix[0]}: .clc data in a file named like an image (use a .clc name)",
                      markup=False)
        codec = make_encoder(model, dictionary, device,
                             torch_calls=effort > NUMPY_EFFORT_MAX or near is not None or slices is not None)
        show_progress = effort >= FIRST_REFINING_EFFORT and len(jobs) == 1 and not quiet

        def work(job: Job) -> str:
            t = time.perf_counter()
            with refinement_progress(show_progress) as progress, \
                    SlowWorkStatus(f"encoding {job.src}", len(jobs) == 1 and not show_progress and not quiet):
                res = codec.encode_full(read_input(job.src) if job.src == "-" else job.src,
                                        quality, refs, slices=slices, near_lossless=near,
                                        strip=strip, alpha=not no_alpha, effort=effort, target_bpp=target_bpp,
                                        target_size=target_size, target_psnr=target_psnr, progress=progress)
            if res.target_note and strict_target:
                raise TargetMissedError(f"{job.src}: {res.target_note} (nothing written: --strict-target)")
            write_output(job.dst, res.data, force)
            if res.target_note and not quiet:
                err.print(f"clc: warning: {job.src}: {res.target_note}", markup=False)
            info = read_info(res.data)
            notes = "".join(f"  [{n}]" for n in res.notes if n != res.target_note)
            found = f"  q {res.quality:g}" if targets else ""
            extra = f"  effort {effort}, {res.refs} refs" if effort else ""
            return (f"{job.src} -> {job.dst}  {info['width']}x{info['height']}  {len(res.data)} bytes  "
                    f"{info['bpp']:.4f} bpp{found}{extra}  {time.perf_counter() - t:.2f} s{notes}")

        run_batch(jobs, work, quiet, "Encode")

    guard(go)


@app.command(no_args_is_help=True, help=DECODE_HELP, epilog=EXIT_CODES_HELP)
def decode(
    inputs: Annotated[list[str], typer.Argument(help=".clc files, or '-' for stdin.", show_default=False, metavar="FILE")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="PATH", help="Output image (format from the "
                                                  "extension: png, jpg, webp, avif, tif, bmp, ppm), folder, or "
                                                  "'-' for stdout (PNG). Default: beside each input, with .png.",
                                                  show_default=False)] = None,
    output_quality: Annotated[Optional[int], typer.Option("--output-quality", "-Q", help="Quality 1..100 of "
                                                          "lossy outputs [default: JPEG 95, AVIF 90, WebP "
                                                          "lossless]", min=1, max=100, show_default=False)] = None,
    exact: ExactOpt = False,
    partial: Annotated[bool, typer.Option("--partial", help="Decode a truncated file from its complete "
                                          "slices (missing ones are predicted); without it a truncated file is "
                                          "an error.")] = False,
    detail: Annotated[str, typer.Option("--detail", help="Slices a file lacks: 'mean' (their prediction: "
                                        "best PSNR) or 'sample' (drawn with --seed: texture instead of blur, a "
                                        "perceptual option).")] = "mean",
    seed: Annotated[int, typer.Option("--seed", help="Seed of --detail sample.", min=0)] = 0,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", help="Refuse files whose image is larger "
                                                      "than this many pixels, before any work [default: "
                                                      "$CLC_MAX_PIXELS, else 89,478,485 (Pillow's limit)]",
                                                      min=1, show_default=False)] = None,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    worker_cpus: WorkerCpusOpt = 1.0,
    manifest: ManifestOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    def go() -> None:
        from ..defaults import DETAIL_MODES, max_pixels as pixel_limit
        from ..io.images import drops_alpha, encode_image, output_format, to_image
        from .distributed import check_engine, run_on_ray

        if detail not in DETAIL_MODES:
            raise UsageError(f"--detail must be one of {', '.join(map(repr, DETAIL_MODES))}, got {detail!r}")
        if check_engine(engine, inputs, output, address=address, workers=workers, worker_cpus=worker_cpus,
                        manifest=manifest):
            return run_on_ray("decode", inputs, output, quiet, output_quality=output_quality, exact=exact,
                              partial=partial, detail=detail, seed=seed, max_pixels=max_pixels, model=model,
                              dictionary=dictionary_arg(dictionary), device=device, address=address,
                              workers=workers, worker_cpus=worker_cpus, force=force, manifest=manifest)
        jobs = plan_outputs(inputs, output, ".png")
        for j in jobs:
            output_format(None if j.dst == "-" else j.dst)
        check_jobs(jobs, force)
        limit = pixel_limit(max_pixels)  # a bad $CLC_MAX_PIXELS fails before any file
        codec = make_decoder(model, dictionary, device, exact)

        def work(job: Job) -> str:
            t = time.perf_counter()
            with SlowWorkStatus(f"decoding {job.src}", len(jobs) == 1 and not quiet):
                r = codec.decode_full(read_input(job.src), exact=exact, partial=partial, detail=detail, seed=seed,
                                      max_pixels=limit)
            pixels = r.pixels
            fmt = output_format(None if job.dst == "-" else job.dst)
            im = to_image(pixels, r.grayscale, r.alpha)
            write_output(job.dst, encode_image(im, fmt, r.metadata, output_quality), force)
            dropped = f"  [alpha dropped: {fmt} has none]" if drops_alpha(im, fmt) else ""
            used = ("  [truncated file: the lossy layer only, its residual is missing]" if r.truncated else "") \
                if r.slices_used == r.slices_total else (
                    f"  {r.slices_used} of {r.slices_total} slices{' (truncated file)' if r.truncated else ''}, "
                    f"the rest {'sampled' if detail == 'sample' else 'predicted'}")
            return (f"{job.src} -> {job.dst}  {pixels.shape[1]}x{pixels.shape[0]}  {time.perf_counter() - t:.2f} s"
                    f"{used}{dropped}")

        run_batch(jobs, work, quiet, "Decode")

    guard(go)
