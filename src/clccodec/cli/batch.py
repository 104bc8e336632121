"""Batch plumbing shared by encode and decode: where outputs go, stdin/stdout, per-file failures, progress."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ClcError, UsageError
from .app import err


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


def refuse_existing_single_output(jobs: list[Job], force: bool) -> None:
    """One output that exists is a usage error before the model loads; in a batch, each existing output is
    that file's failure (the others are still written)."""
    if len(jobs) == 1 and jobs[0].dst != "-" and Path(jobs[0].dst).exists() and not force:
        raise UsageError(f"{jobs[0].dst} exists (use --force to overwrite)")


def read_input(src: str) -> bytes:
    from ..io.files import read_bytes

    return sys.stdin.buffer.read() if src == "-" else read_bytes(src)


def write_output(dst: str, data: bytes, force: bool) -> None:
    from ..io.files import write_atomic

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


@contextlib.contextmanager
def refinement_progress(show: bool):
    """A transient progress bar on stderr for a long (refining) encode; yields the callback, or None."""
    if not show:
        yield None
        return
    with Progress(TextColumn("refining latents"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("refine", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


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
