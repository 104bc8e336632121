"""Batch plumbing shared by encode and decode: where outputs go, stdin/stdout, per-file failures, progress."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import EXIT_BATCH_FAILED, ClcError, UsageError
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
        if many and not p.is_dir() and not output.endswith(os.sep) and p.suffix:
            raise UsageError(f"-o {output} names one file, but {len(inputs)} inputs were given (for a folder, "
                             f"end it with {os.sep}: -o {p.with_suffix('')}{os.sep})")
        if many or p.is_dir() or output.endswith(os.sep):
            out_dir = p
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise UsageError(f"-o {output}: a file is in the way of the output folder") from None
            except OSError as e:
                raise UsageError(f"-o {output}: cannot create the output folder ({e.strerror or e})") from None
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


def check_jobs(jobs: list[Job], force: bool) -> None:
    """What would fail after the work, refused before the model loads: binary data to a terminal (unless
    `force`: gzip's rule), an output folder that is missing or read-only, and for a single file a missing input or
    an output that exists. In a batch an existing output or a missing input is that file's failure (the others
    are still written)."""
    from ..io.files import check_folder, check_output

    if any(j.dst == "-" for j in jobs) and sys.stdout.isatty() and not force:
        raise UsageError("refusing to write binary data to a terminal (redirect it to a file or a pipe, or use "
                         "--force)")
    folders = {Path(j.dst).parent: j.dst for j in reversed(jobs) if j.dst != "-"}  # (the first output of each)
    for folder, dst in folders.items():
        check_folder(folder, dst)  # (existing files are judged per job)
    if len(jobs) == 1:
        job = jobs[0]
        if job.src != "-" and (not Path(job.src).exists() or Path(job.src).is_dir()):  # (a pipe is read once,
            read_input(job.src)  # by the job) the one-line reason: no such file, is a directory
        if job.dst != "-":
            check_output(job.dst, force)


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


class SlowWorkStatus:
    """A transient line on stderr ("encoding photo.png  12 s") for work that is still running after `delay`
    seconds, on a terminal only: a fast job prints nothing, a pipe or --quiet never sees it."""

    def __init__(self, what: str, enabled: bool, delay: float = 2.0) -> None:
        self.what, self.delay = what, delay
        self.enabled = enabled and err.is_terminal
        self._lock = threading.Lock()
        self._status = None
        self._timer: threading.Timer | None = None

    def __enter__(self) -> SlowWorkStatus:
        if self.enabled:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _show(self) -> None:
        with self._lock:
            if self._timer is None:
                return
            self._status = Progress(SpinnerColumn(), TextColumn(self.what), TimeElapsedColumn(), console=err,
                                    transient=True)
            self._status.add_task(self.what, total=None)
            self._status.start()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._status is not None:
                self._status.stop()
                self._status = None


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
                where = "" if job.src in str(e) else f"{job.src}: "  # messages that name the file do so once
                (progress.console if progress else err).print(f"clc: error: {where}{e}", markup=False)
            if progress:
                progress.advance(task)
    finally:
        if progress:
            progress.stop()
    if len(jobs) > 1 and not quiet:
        err.print(f"{report.done} {verb.lower()}d, {len(report.failed)} failed", markup=False)
    if report.failed:
        raise typer.Exit(report.failed[0][2] if len(jobs) == 1 else EXIT_BATCH_FAILED)
