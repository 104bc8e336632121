"""`clc encode/decode --engine ray`: the batch on a Ray cluster (clccodec.distributed), reported like a local
batch: a progress bar, one line per failed input, a summary, exit code 1 when any input failed."""

from __future__ import annotations

import contextlib
from typing import Any, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import EXIT_BATCH_FAILED, UsageError
from .app import err

ENGINES = ("local", "ray")


def check_engine(engine: str, inputs: list[str], output: Optional[str], *, address: Optional[str],
                 workers: Optional[int], worker_cpus: float, manifest: Optional[str] = None) -> bool:
    """True for the Ray engine; its usage errors, and Ray options given without it."""
    if engine not in ENGINES:
        raise UsageError(f"--engine must be 'local' or 'ray', got {engine!r}")
    if engine == "local":
        ray_options = {"--address": address is not None, "--workers": workers is not None,
                       "--worker-cpus": worker_cpus != 1.0, "--manifest": manifest is not None}
        given = [name for name, on in ray_options.items() if on]
        if given:
            raise UsageError(f"{given[0]} needs --engine ray")
        return False
    if output is None or output == "-":
        raise UsageError("--engine ray writes into a folder or URI: give it with -o")
    if "-" in inputs:
        raise UsageError("--engine ray reads files, folders or URIs, not stdin ('-')")
    return True


def run_on_ray(direction: str, inputs: list[str], output: str, quiet: bool, **kwargs: Any) -> None:
    import typer

    from ..distributed import decode_dataset, encode_dataset

    job = encode_dataset if direction == "encode" else decode_dataset
    with (Progress(TextColumn(f"{direction.capitalize()} (Ray)"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=False) if not quiet
          else contextlib.nullcontext()) as progress:
        task = progress.add_task(direction, total=None) if progress else None

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = job(inputs, output, progress=update if progress else None, **kwargs)
    for row in report.failed:
        where = "" if row["input"] in row["error"] else f"{row['input']}: "  # (messages that name it do so once)
        err.print(f"clc: error: {where}{row['error']}", markup=False)
    if not quiet:
        err.print(f"{report.count('written')} {direction}d, {report.count('skipped')} already complete, "
                  f"{len(report.failed)} failed, on {report.workers} Ray workers in {report.seconds:.1f} s; "
                  f"manifest {report.manifest}", markup=False)
    if report.failed:
        raise typer.Exit(EXIT_BATCH_FAILED)
