"""clccodec beyond one machine, on Ray (an optional dependency: pip install 'clccodec[ray]').

    from clccodec.distributed import encode_dataset, decode_dataset
    report = encode_dataset(["photos/"], "out/", quality=3)              # a local Ray runtime, this machine's cores
    report = encode_dataset(["s3://b/in/"], "s3://b/clc/", address="auto")  # a running cluster
    print(report.count("written"), report.count("skipped"), report.failed)

jobs.py runs the batch jobs (one manifest row per input, atomic outputs, reruns skip complete outputs),
storage.py reaches local folders and object stores through pyarrow. Nothing here is imported by `import
clccodec`; Ray itself is imported when a job starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..defaults import DEFAULT_DETAIL, DEFAULT_EFFORT, DEFAULT_REFS
from .jobs import DEFAULT_BATCH, JobReport

__all__ = ["JobReport", "decode_dataset", "encode_dataset"]

Location = str | os.PathLike


def encode_dataset(sources: Sequence[Location], dst: Location, quality: float | None = None,
                   refs: int = DEFAULT_REFS, *, effort: int = DEFAULT_EFFORT, target_bpp: float | None = None,
                   target_size: int | None = None, target_psnr: float | None = None, strict_target: bool = False,
                   slices: int | None = None, strip: bool = False, alpha: bool = True,
                   near_lossless: int | None = None, model: Location | None = None,
                   dictionary: Location | None | bool = None, device: str = "auto", address: str | None = None,
                   workers: int | None = None, worker_cpus: float = 1.0, worker_gpus: float = 0.0,
                   batch_size: int = DEFAULT_BATCH, force: bool = False, manifest: Location | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   _crash_once: str | None = None, _crash_on: str | None = None) -> JobReport:
    """Encode every image of `sources` (files, folders, prefixes: local paths or URIs) to .clc files under `dst`
    on Ray, the same bytes as clccodec.encode gives. The coding options are Codec.encode_full's
    (`strict_target`: a target out of reach fails that input instead of writing the nearest file). `address`:
    a Ray cluster (None: a local runtime, or $RAY_ADDRESS); `workers` actors (default: the cluster's CPUs /
    `worker_cpus`), each with `worker_cpus` threads and `worker_gpus` GPUs, coding `batch_size` inputs per call.
    `force`: recode outputs that are already there and complete (skipped by default). `manifest`: where the
    rows go (default DST/manifest.jsonl; .parquet for Parquet). `progress(done, total)` as inputs finish.
    (`_crash_once`, `_crash_on`: test hooks, jobs.CodingWorker's config["crash"].)"""
    from ..io.images import IMAGE_SUFFIXES
    from .jobs import run_job

    options = {"quality": quality, "refs": refs, "effort": effort, "target_bpp": target_bpp,
               "target_size": target_size, "target_psnr": target_psnr, "slices": slices, "strip": strip,
               "alpha": alpha, "near_lossless": near_lossless, "strict_target": strict_target}
    check_encode_options(options)
    return run_job("encode", list(sources), dst, options, suffixes=IMAGE_SUFFIXES | {".avif"}, out_suffix=".clc",
                   model=model, dictionary=dictionary, device=device, address=address, workers=workers,
                   worker_cpus=worker_cpus, worker_gpus=worker_gpus, batch_size=batch_size, force=force,
                   manifest=manifest, progress=progress,
                   crash={"once": _crash_once, "on": _crash_on})


def decode_dataset(sources: Sequence[Location], dst: Location, *, output_format: str = "png",
                   output_quality: int | None = None, exact: bool = False, partial: bool = False,
                   detail: str = DEFAULT_DETAIL, seed: int = 0, max_pixels: int | None = None,
                   model: Location | None = None, dictionary: Location | None | bool = None, device: str = "auto",
                   address: str | None = None, workers: int | None = None, worker_cpus: float = 1.0,
                   worker_gpus: float = 0.0, batch_size: int = DEFAULT_BATCH, force: bool = False,
                   manifest: Location | None = None,
                   progress: Callable[[int, int], None] | None = None) -> JobReport:
    """Decode every .clc file of `sources` to images under `dst` (`output_format`: png, jpg, webp, avif, tif, bmp,
    ppm; `output_quality` 1..100 for the lossy ones) on Ray. The decoding options are Decoder.decode_full's; the
    job options encode_dataset's."""
    from ..decoding.decoder import check_decode_args
    from ..errors import UsageError, check_number
    from ..io.images import OUTPUT_FORMATS
    from .jobs import run_job

    suffix = "." + str(output_format).lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"cannot write '{output_format}' images; use one of "
                         f"{', '.join(s[1:] for s in sorted(OUTPUT_FORMATS))}")
    check_decode_args(detail, seed, max_pixels)
    check_number("output_quality", output_quality, 1, 100, integer=True, optional=True)
    options = {"exact": exact, "partial": partial, "detail": detail, "seed": seed, "max_pixels": max_pixels,
               "output_quality": output_quality}
    return run_job("decode", list(sources), dst, options, suffixes=frozenset({".clc"}), out_suffix=suffix,
                   model=model, dictionary=dictionary, device=device, address=address, workers=workers,
                   worker_cpus=worker_cpus, worker_gpus=worker_gpus, batch_size=batch_size, force=force,
                   manifest=manifest, progress=progress)


def check_encode_options(options: dict[str, Any]) -> None:
    """The checks every worker would make on each input, made once before the job starts (the model-dependent
    bound on `slices` is checked by the workers)."""
    from ..encoding.backends import check_encode_args

    check_encode_args(options["quality"], options["refs"], options["effort"], target_bpp=options["target_bpp"],
                      target_size=options["target_size"], target_psnr=options["target_psnr"],
                      slices=options["slices"], near_lossless=options["near_lossless"])
