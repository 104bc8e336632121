"""`clc eval`: the RD benchmark on real files (clccodec.evaluation), printed as rich tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..defaults import DEFAULT_REFS
from ..format.container import MAX_REFS
from ..errors import UsageError
from .app import EXIT_CODES_HELP, DeviceOpt, DictOpt, ExactOpt, ForceOpt, ModelOpt, QuietOpt, app, err, guard, \
    make_codec, out


@app.command("eval", no_args_is_help=True, epilog=EXIT_CODES_HELP)
def eval_cmd(
    inputs: Annotated[list[str], typer.Argument(help="A folder of images (e.g. Kodak) and/or image files.",
                                                show_default=False, metavar="DIR")],
    quality: Annotated[str, typer.Option("--quality", "-q", help="Qualities: 1-8, 1,2,3, 1-4,6 or 1-3:0.5.")] = "1-8",
    refs: Annotated[int, typer.Option("--refs", help="Dictionary references per image (M; 0 disables).",
                                      min=0, max=MAX_REFS)] = DEFAULT_REFS,
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
    exact: ExactOpt = False,
    model: ModelOpt = None,
    dictionary: DictOpt = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rate-distortion benchmark on real files: bpp from the .clc bytes, PSNR and MS-SSIM on the decoded 8-bit
    RGB, encode/decode seconds, BD-rate vs VTM and the other anchors, classical codecs side by side.

    \b
    Examples:
      clc eval ../shared/data/kodak --json rd.json --plot rd.png
      clc eval ./photos -q 2,4,6 --codecs jpeg,avif --limit 5
      clc eval ./kodak -q 1-8 --refs 0 --anchors vtm,bpg,elic --keep out/
      BD-rate: cubic Bjøntegaard fit of log-rate vs PSNR over the shared PSNR range, also restricted to points
      <= 1 bpp (how the anchor ladder is quoted). Anchors are Kodak averages: compare against them on all 24
      Kodak images.
    """

    def go() -> None:
        from ..evaluation import anchors, classical, outputs, runner

        qualities = runner.parse_qualities(quality)
        try:
            live = classical.parse_codecs(codecs)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        keys = anchors.parse_keys(anchor_list)
        outputs.check_destination(json_path, "--json", force)
        outputs.check_destination(plot, "--plot", force)
        files = runner.find_images(inputs, limit)
        codec = make_codec(model, dictionary, device)
        images = runner.load_images(files)
        total = runner.count_steps(len(images), qualities, live)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=quiet) as progress:
            task = progress.add_task("eval", total=total)

            def step(what: str) -> None:
                progress.update(task, advance=1, description=what)

            report = runner.evaluate(images, ", ".join(inputs), codec, qualities, refs, live, keys, keep, step, exact)
        if not quiet:
            print_report(report)
        for path, write in ((json_path, outputs.write_json), (plot, outputs.write_plot)):
            if path is not None:
                write(report, path)
                if not quiet:
                    err.print(f"wrote {path}", markup=False)

    guard(go)


def _bd_cell(r, reasons: dict[str, None]) -> str:
    if r is None:
        return "-"
    if r.value is None:
        reasons[r.reason] = None
        return "n/a"
    return f"{r.value:+.1f} %"


def print_report(report) -> None:
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
    if report.bd:
        t = Table(title=escape(f"BD-rate of {run.name} against each curve (negative = fewer bits)"),
                  title_justify="left")
        for col in ("against", "PSNR <=1bpp", "PSNR all", "MS-SSIM all", "it vs VTM"):
            t.add_column(col, justify="right" if col != "against" else "left")
        for r in report.bd:
            t.add_row(escape(r.label), *(_bd_cell(c, reasons) for c in (r.vs_le1, r.vs_all, r.vs_msssim,
                                                                          r.ref_vs_vtm)))
        out.print(t)
        out.print("(PSNR <=1bpp: points above 1 bpp dropped from both curves; MS-SSIM in dB; 'it vs VTM': that "
                  "curve's own BD-rate vs VTM, PSNR <=1bpp)", markup=False)
        for reason in reasons:
            out.print(f"n/a: {reason}", markup=False)
    head = report.headline()
    if head is not None:
        out.print(f"BD-rate vs VTM (PSNR, <= 1 bpp): {_bd_cell(head, reasons)}", markup=False)
    for n in report.notes:
        err.print(f"note: {n}", markup=False)
