"""`clc build-dict`: a reference dictionary from a folder of images, with a progress bar per stage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..defaults import SKLEARN_MAX_CROPS
from ..errors import UsageError
from .app import EXIT_CODES_HELP, AddressOpt, DeviceOpt, EngineOpt, ForceOpt, ModelOpt, QuietOpt, WorkerCpusOpt, \
    WorkersOpt, app, err, guard


class RichReporter:
    """Rich progress bars for build-dict: one line per stage (the library's Reporter interface)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, transient=False, disable=quiet)
        self.task = None

    def __enter__(self) -> "RichReporter":
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


@app.command("build-dict", no_args_is_help=True, epilog=EXIT_CODES_HELP)
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
    pictures: Annotated[bool, typer.Option("--pictures", help="Also store the photos themselves (PNG), so that "
                                           "encoders copy blocks from them: for collections of similar photos "
                                           "(bursts, views of one scene); the file grows by their size.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of PCA and clustering (same inputs + seed: same "
                                      "file).")] = 0,
    batch: Annotated[int, typer.Option("--batch", help="Crops per forward pass.", min=1)] = 16,
    kmeans: Annotated[str, typer.Option("--kmeans", help="Clustering: sklearn (MiniBatchKMeans), faiss (FAISS "
                                        "k-means on a sample of 256 crops per cluster; GPU with faiss-gpu), or "
                                        f"auto (sklearn up to {SKLEARN_MAX_CROPS:,} crops, faiss above).")] = "auto",
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    worker_cpus: WorkerCpusOpt = 1.0,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build a reference dictionary (.clcdict) from a folder of images, for one model.

    Crops every image on a grid, describes each crop by spatial-pyramid-pooled features, reduces them with PCA
    (256 dims), clusters them into K entries (MiniBatchKMeans; the crop nearest each centroid represents its
    cluster) and stores each entry's search key and its int8 reference values, bound to the model's id, with
    provenance (file names, sha256, license note). With --pictures it also holds the photos, and files encoded
    with it copy 16x16 blocks from them wherever that costs less than coding them (docs/references.md).

    \b
    Examples:
      clc build-dict ./photos -o photos.clcdict
      clc build-dict ../shared/data/train --glob 'unsplash_*.png' -o default.clcdict --license 'Unsplash License'
      clc build-dict ./burst --pictures -o burst.clcdict   (then: clc encode shot.png --dict burst.clcdict)
      clc build-dict ./photos -o r50.clcdict --features resnet50 --weights resnet50.pth -k 1000 --stride 128
      clc build-dict ./archive -o archive.clcdict -k 30000 --engine ray --address auto
    """

    def go() -> None:
        from ..defaults import default_model_path
        from ..model.device import resolve_device
        from ..dictionary.build import DEFAULT_LICENSE, BuildOptions, build_dictionary
        from ..model.weights import load_weights

        if output.exists() and not force:
            raise UsageError(f"{output} exists (use --force to overwrite)")
        if not output.parent.is_dir():
            raise UsageError(f"{output.parent}: folder does not exist")
        from .distributed import check_engine

        on_ray = check_engine(engine, [str(folder)], str(output), address=address, workers=workers,
                              worker_cpus=worker_cpus)
        opts = BuildOptions(clusters=clusters, crop=crop, stride=stride, features=features, weights=weights,
                            seed=seed, batch=batch, license=license_note or DEFAULT_LICENSE, pattern=glob,
                            pictures=pictures, kmeans=kmeans)
        opts.check()
        t = time.perf_counter()
        if not on_ray:
            dev = resolve_device(device)
            net = load_weights(model or default_model_path(), dev)
        with RichReporter(quiet) as rep:
            if on_ray:
                from ..distributed.dictionary import build_dictionary_on_ray

                d, report = build_dictionary_on_ray(folder, model or default_model_path(), opts, rep,
                                                    address=address, workers=workers, worker_cpus=worker_cpus)
            else:
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
                      f"values {c}x{h}x{w} int8, {len(d.pictures)} pictures, {size} bytes, id {d.id_hex}, model {d.model_id.hex()}, "
                      f"{time.perf_counter() - t:.1f} s", markup=False)

    guard(go)
