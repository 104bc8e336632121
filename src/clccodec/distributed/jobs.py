"""Batch encoding and decoding on Ray: the `clc encode/decode --engine ray` jobs and their Python functions.

    from clccodec.distributed import encode_dataset, decode_dataset
    report = encode_dataset(["photos/", "s3://bucket/more/"], "s3://bucket/clc/", quality=3)
    report = decode_dataset(["s3://bucket/clc/"], "decoded/", address="auto")

The driver lists the inputs (files as given; folders and prefixes recursively) and plans one output per input
under the destination (a folder's files keep their relative paths, with the new suffix); batches of those
(input, output) pairs go to a pool of Ray actors (WorkerPool), each of which loads the model and dictionary once
and codes its batches with the same library calls as the local CLI (so the files are the same bytes). Each actor
reads its inputs itself, as bytes, through pyarrow (so ICC profiles and EXIF are kept as locally, and a file that
vanished or cannot be read is that row's error), and writes each output atomically (storage.py).

Every input gives one manifest row (manifest_schema()): its output, "written" / "skipped" / "failed", bytes, bpp,
quality, references, size, seconds and the error. A corrupt input is a failed row, never a failed job; an actor
that dies is restarted by Ray and its batch retried (up to MAX_RETRIES times: the inputs of a batch that kills its
worker every time are failed rows, and the job goes on); a rerun skips every output that is already there and
complete (parsed: a .clc file with all its sections and checksums, an image that loads to its end) and writes
nothing else; `force` recodes them all.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClcError, UsageError, WorkerLostError, check_number
from . import storage

STATUSES = ("written", "skipped", "failed")
MAX_RETRIES = 3  # a batch whose worker died is retried this often; then its inputs are failed rows
WORKER_NICENESS = "RAY_worker_niceness"  # Ray's setting for its worker processes' priority
ENVIRONMENT = ("CLC_MODEL", "CLC_DICTIONARY", "CLC_MAX_PIXELS")  # the driver's settings the workers must share
DEFAULT_BATCH = 1  # inputs per actor call: a call costs milliseconds, and one input per call spreads work evenly
MANIFEST_NAME = "manifest.jsonl"


def empty_row(src: str, dst: str) -> dict:
    return {"input": src, "output": dst, "status": "failed", "bytes": None, "bpp": None, "quality": None,
            "refs": None, "width": None, "height": None, "seconds": None, "error": None}


def manifest_schema():
    import pyarrow as pa

    return pa.schema([("input", pa.string()), ("output", pa.string()), ("status", pa.string()),
                      ("bytes", pa.int64()), ("bpp", pa.float64()), ("quality", pa.float64()),
                      ("refs", pa.int64()), ("width", pa.int64()), ("height", pa.int64()),
                      ("seconds", pa.float64()), ("error", pa.string())])


@dataclass
class JobReport:
    """What a job did: counts by status, the manifest rows (sorted by input) and where the manifest went."""

    rows: list[dict] = field(default_factory=list)
    manifest: str = ""
    seconds: float = 0.0
    workers: int = 0

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]


# -- planning (driver) --------------------------------------------------------------------------------------------


def plan(sources: list[str], dst: str, suffixes: frozenset[str], out_suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs: a file gives DST/its-stem+suffix, a folder or prefix every file below it with a
    wanted suffix at the same relative path under DST. A missing input stays in the plan (its row says so); two
    inputs that would write one output are refused before any work."""
    if not sources:
        raise UsageError("no inputs")
    pairs: list[tuple[str, str]] = []
    dst = dst if storage.is_uri(dst) else os.path.abspath(dst)  # workers run in other folders, on other nodes
    for src in sources:
        if src == "-":
            raise UsageError("the Ray engine reads files, not stdin ('-')")
        src = src.rstrip("/") if storage.is_uri(src) else os.path.abspath(src)
        if storage.kind(src) == "dir":
            for rel in storage.list_files(src, suffixes):
                stem = posixpath.splitext(rel)[0]
                pairs.append((storage.join(src, rel), storage.join(dst, *f"{stem}{out_suffix}".split("/"))))
        else:
            name = posixpath.basename(src) if storage.is_uri(src) else os.path.basename(src)
            pairs.append((src, storage.join(dst, os.path.splitext(name)[0] + out_suffix)))
    outs = [o for _, o in pairs]
    if len(set(outs)) != len(outs):
        seen: dict[str, str] = {}
        for i, o in pairs:
            if o in seen:
                raise UsageError(f"{seen[o]} and {i} would both write {o}")
            seen[o] = i
    return pairs


# -- the workers (Ray actors) -------------------------------------------------------------------------------------


def complete_output(data: bytes, direction: str) -> dict | None:
    """The manifest fields of an output that is already there and complete, or None (missing, partial, not ours)."""
    if direction == "encode":
        from ..format.container import read_info, unpack

        try:
            unpack(data)
            info = read_info(data)
        except (ClcError, ValueError):
            return None
        return {"bytes": len(data), "bpp": info["bpp"], "quality": info["quality"], "refs": len(info["references"]),
                "width": info["width"], "height": info["height"]}
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return {"bytes": len(data), "width": im.width, "height": im.height}
    except Exception:  # noqa: BLE001 - anything Pillow cannot read to its end is not a complete output
        return None


def worker_process_startup() -> None:
    """The CLI's start-up trick (cli/startup.py: CompressAI without its eager imports) in a worker process, which
    Ray starts for this actor alone: its model loads in 1.8 s instead of 4.6 s, a job's fixed cost on every node."""
    from ..cli.startup import load

    load()


class CodingWorker:
    """One Ray actor: a model (and dictionary) loaded once, then batches of (input, output) pairs coded one by one
    with the local library calls. Test hooks, config["crash"]: "once" a marker path (the first worker to write an
    output while it does not exist creates it and kills its own process, before the rest of its batch), "on" an
    input's file name (a worker that starts coding it kills its own process, every time)."""

    def __init__(self, config: dict) -> None:
        worker_process_startup()
        c = config
        from threadpoolctl import threadpool_limits

        # the actor's CPUs: numpy's BLAS was loaded before Ray set OMP_NUM_THREADS (which torch follows)
        threadpool_limits(c["threads"])
        self.direction, self.options, self.force = c["direction"], dict(c["options"]), c["force"]
        self.crash = c.get("crash") or {}
        if self.direction == "encode":
            from ..encoding.backends import Encoder
            from ..encoding.effort import NUMPY_EFFORT_MAX

            o = self.options
            self.codec = Encoder(c["model"], c["dictionary"], c["device"],
                                 torch_calls=o.get("effort", 0) > NUMPY_EFFORT_MAX or o.get("near_lossless") is not None
                                 or o.get("slices") is not None)
        else:
            from ..decoding.decoder import Decoder

            self.codec = Decoder(c["model"], c["dictionary"], c["device"], bool(self.options.get("exact")))

    def run(self, pairs: list[tuple[str, str]]) -> list[dict]:
        return [self.code(src, dst) for src, dst in pairs]

    def code(self, src: str, dst: str) -> dict:
        row = empty_row(src, dst)
        t = time.perf_counter()
        if posixpath.basename(src) == self.crash.get("on"):
            os._exit(1)
        try:
            if not self.force:
                try:
                    done = complete_output(storage.read(dst), self.direction)
                except UsageError:  # not there (or unreadable): code it
                    done = None
                if done is not None:
                    return row | done | {"status": "skipped", "seconds": 0.0}
            data = storage.read(src)
            out, fields = self.encode(data) if self.direction == "encode" else self.decode(data, dst)
            try:
                storage.write_atomic(dst, out)
            except OSError as e:
                raise UsageError(f"{dst}: cannot write ({e})") from None
            row |= fields | {"status": "written", "bytes": len(out)}
            if self.crash.get("once") and not os.path.exists(self.crash["once"]):
                open(self.crash["once"], "w").close()
                os._exit(1)
        except ClcError as e:  # (an image read from bytes is named "image" by its reader: name the input)
            msg = str(e)
            row["error"] = f"{src}: {msg[len('image: '):]}" if msg.startswith("image: ") else msg
        except Exception as e:  # noqa: BLE001 - a bug on one input is that row's error, never the whole job's
            row["error"] = f"internal error: {e.__class__.__name__}: {e}"
        row["seconds"] = round(time.perf_counter() - t, 4)
        return row

    def encode(self, data: bytes) -> tuple[bytes, dict]:
        from ..errors import TargetMissedError
        from ..format.container import read_info

        opts = dict(self.options)
        strict = opts.pop("strict_target", False)
        res = self.codec.encode_full(data, **opts)
        if res.target_note and strict:
            raise TargetMissedError(f"{res.target_note} (nothing written: strict_target)")
        info = read_info(res.data)
        return res.data, {"bpp": info["bpp"], "quality": res.quality, "refs": res.refs, "width": info["width"],
                          "height": info["height"], "error": res.target_note or None}

    def decode(self, data: bytes, dst: str) -> tuple[bytes, dict]:
        from ..format.container import read_info
        from ..io.images import encode_image, output_format, to_image

        opts = dict(self.options)
        quality = opts.pop("output_quality", None)
        r = self.codec.decode_full(data, **opts)
        im = to_image(r.pixels, r.grayscale, r.alpha)
        info = read_info(data)
        return encode_image(im, output_format(dst), r.metadata, quality), {
            "bpp": info["bpp"], "quality": info["quality"], "refs": len(info["references"]),
            "width": im.width, "height": im.height}


# -- the job (driver) ---------------------------------------------------------------------------------------------


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address` ("auto", "ray://host:10001", "host:6379"), or start a local runtime
    with this machine's cores (None: also $RAY_ADDRESS); a process already connected stays connected."""
    try:
        import ray
    except ImportError:
        raise UsageError("the Ray engine needs Ray: pip install 'clccodec[ray]'") from None
    if ray.is_initialized():
        return
    local = address is None and "RAY_ADDRESS" not in os.environ
    saved = os.environ.get(WORKER_NICENESS)
    if local and saved is None:  # Ray runs workers at niceness 15: beside any other load a local job would crawl
        os.environ[WORKER_NICENESS] = "0"  # (read when the runtime starts; the workers inherit it from there)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UsageError(f"cannot connect to the Ray cluster at {address or '$RAY_ADDRESS'}: {e}") from None
    finally:
        if local and saved is None:
            os.environ.pop(WORKER_NICENESS, None)


def run_job(direction: str, sources: list[str], dst: str, options: dict, *, suffixes: frozenset[str],
            out_suffix: str, model: str | os.PathLike | None, dictionary: Any, device: str, address: str | None,
            workers: int | None, worker_cpus: float, worker_gpus: float, batch_size: int, force: bool,
            manifest: str | None, progress: Callable[[int, int], None] | None,
            crash: dict | None = None) -> JobReport:
    check_number("workers", workers, 1, integer=True, optional=True)
    check_number("worker_cpus", worker_cpus, 0.01)
    check_number("worker_gpus", worker_gpus, 0)
    check_number("batch_size", batch_size, 1, integer=True)
    t0 = time.perf_counter()
    model, dictionary = local_file("model", model), local_file("dictionary", dictionary)  # before Ray starts
    dst = os.fspath(dst)
    dst = dst if storage.is_uri(dst) else os.path.abspath(dst)
    pairs = plan([os.fspath(s) for s in sources], dst, suffixes, out_suffix)
    storage.make_dirs(dst)
    manifest = os.fspath(manifest) if manifest is not None else storage.join(dst, MANIFEST_NAME)
    connect(address)
    workers = workers or default_workers(worker_cpus, worker_gpus)
    if worker_gpus == 0 and device == "auto":
        device = "cpu"  # Ray does not hide the GPUs from actors that reserve none: they must not use them
    report = JobReport(manifest=manifest, workers=workers)
    config = {"direction": direction, "options": options, "model": model, "dictionary": dictionary,
              "device": device, "threads": max(1, int(worker_cpus)), "force": force, "crash": crash}
    batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
    try:
        if batches:
            with WorkerPool(CodingWorker, config, min(workers, len(batches)), num_cpus=worker_cpus,
                            num_gpus=worker_gpus, runtime_env=worker_environment()) as pool:
                for batch, rows in pool.map(batches):
                    if isinstance(rows, WorkerLostError):
                        rows = [empty_row(i, o) | {"error": f"{i}: {rows}"} for i, o in batch]
                    report.rows += rows
                    if progress is not None:
                        progress(len(report.rows), len(pairs))
    finally:  # (a job that fails midway still says what it did)
        report.rows.sort(key=lambda r: r["input"])
        write_manifest(manifest, report.rows)
    report.seconds = time.perf_counter() - t0
    return report


class WorkerPool:
    """`size` Ray actors cls(config), each reserving num_cpus / num_gpus, for as many map() calls as needed:

        with WorkerPool(CodingWorker, config, 4, num_cpus=1) as pool:
            for batch, result in pool.map(batches): ...

    Ray Core actors rather than Ray Data's map_batches: Ray Data adds its own helper actors, a driver-side
    executor and a start-up of several seconds, 10-25 % of a whole job's time on a small machine
    (docs/distributed.md, *Measured here*). An actor gets work once it has started (one the cluster cannot place
    yet holds none); one whose constructor fails is dropped, and when none could start, map() raises
    WorkerLostError with the constructor's error."""

    def __init__(self, cls: type, config: dict, size: int, *, num_cpus: float, num_gpus: float = 0.0,
                 runtime_env: dict | None = None) -> None:
        import ray

        remote = ray.remote(cls).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=-1,
                                         max_task_retries=MAX_RETRIES, runtime_env=runtime_env)
        self.actors = [remote.remote(config) for _ in range(max(1, size))]
        self.ready: set[int] = set()  # actors known to have started
        self.failed: set[int] = set()  # actors whose constructor raised
        self.start_error = ""

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)

    def map(self, batches: list[list]) -> Iterator[tuple[list, Any]]:
        """(batch, actor.run(batch)) for every batch, in the order they finish; each started actor is given the
        next batch as soon as it finishes one. Ray restarts an actor whose process dies and retries its batch; a
        batch that still fails (MAX_RETRIES retries, or its worker ran out of memory) comes back as a
        WorkerLostError in place of its result, and the map goes on."""
        import ray
        from ray.exceptions import OutOfMemoryError, RayActorError, RayError

        todo = list(reversed(batches))
        running: dict = {}  # result ref -> (actor number, batch)
        starting = {self.actors[i].__ray_ready__.remote(): i for i in range(len(self.actors))
                    if i not in self.ready | self.failed}
        idle = sorted(self.ready)
        while todo or running:
            while idle and todo:
                i, batch = idle.pop(), todo.pop()
                running[self.actors[i].run.remote(batch)] = (i, batch)
            waiting = list(running) + (list(starting) if todo else [])
            if not waiting:
                raise WorkerLostError(f"no Ray worker could start: {self.start_error}")
            [ref], _ = ray.wait(waiting, num_returns=1)
            if ref in starting:
                i = starting.pop(ref)
                try:
                    ray.get(ref)
                    self.ready.add(i)
                    idle.append(i)
                except RayError as e:
                    self.failed.add(i)
                    self.start_error = cause_line(e)
                continue
            i, batch = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as e:
                if e.actor_init_failed:  # never started: the batch goes to another worker
                    self.failed.add(i)
                    self.ready.discard(i)
                    self.start_error = cause_line(e)
                    todo.append(batch)
                    continue
                result = WorkerLostError(f"its worker died (retried {MAX_RETRIES} times)")
            except OutOfMemoryError:
                result = WorkerLostError("its worker ran out of memory")
            idle.append(i)
            yield batch, result


def cause_line(e: Exception) -> str:
    """The last line of a Ray error's text that names an exception (a worker's traceback ends with it)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    named = [ln for ln in lines if not ln.startswith(("File ", "^", "~")) and "Error" in ln.split(":")[0]]
    return (named or lines or [e.__class__.__name__])[-1].replace("clccodec.errors.", "")


def default_workers(worker_cpus: float, worker_gpus: float = 0.0) -> int:
    """As many workers as the connected cluster's CPUs (and GPUs, where workers take some) hold."""
    import ray

    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // worker_cpus)
    if worker_gpus:
        n = min(n, int(res.get("GPU", 0) // worker_gpus))
    return max(1, n)


def local_file(what: str, value: Any) -> Any:
    """A --model / --dict argument as an absolute path checked on the driver (every worker must see it at the
    same path); None and False pass through."""
    if value is None or value is False or not isinstance(value, (str, os.PathLike)):
        return value
    path = os.fspath(value)
    if storage.is_uri(path):
        raise UsageError(f"--{'dict' if what == 'dictionary' else what} {path}: give a local path (every worker "
                         "must read it at the same path)")
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path}: no such file")
    return os.path.abspath(path)


def worker_environment() -> dict | None:
    """$CLC_MODEL, $CLC_DICTIONARY and $CLC_MAX_PIXELS as the driver sees them (paths made absolute), for workers
    on nodes that do not have them."""
    env = {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}
    for k in ("CLC_MODEL", "CLC_DICTIONARY"):
        if k in env and not storage.is_uri(env[k]):
            env[k] = os.path.abspath(env[k])
    return {"env_vars": env} if env else None


def write_manifest(location: str, rows: list[dict]) -> None:
    """JSON lines (one object per input), or Parquet where the name ends with .parquet."""
    if location.lower().endswith(".parquet"):
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=manifest_schema()), buf)
        storage.write_atomic(location, buf.getvalue())
    else:
        storage.write_atomic(location, "".join(json.dumps(r) + "\n" for r in rows).encode())
