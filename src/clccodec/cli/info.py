"""`clc info`: what a .clc file or a .clcdict holds (reads headers only: no torch, no model)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import EXIT_BATCH_FAILED, ClcError
from .app import EXIT_CODES_HELP, app, err, examples, guard, out
from .batch import read_input


def describe(raw: bytes) -> dict:
    """The info of a .clcdict (errors prefixed by the caller) or of a .clc file (with the release of its model)."""
    from ..model import releases as release
    from ..format.container import read_info
    from ..format import clcdict

    if clcdict.looks_like_clcdict(raw):
        return clcdict.info(raw)
    inf = read_info(raw)
    return inf | {"model_release": release.describe(bytes.fromhex(inf["model_id"]))}


# what a user asks first, in this order, as table labels; the rest (the coder's internals) only with --verbose
SUMMARY = {".clc": [("size", "size"), ("mode", "mode"), ("bytes", "bytes"), ("bpp", "bpp"), ("quality", "quality"),
                    ("model_release", "model"), ("refs", "references"), ("metadata", "metadata"),
                    ("alpha_bytes", "alpha bytes"), ("residual_shown", "residual"), ("slices_shown", "slices")],
           ".clcdict": [("K", "K"), ("bytes", "bytes"), ("model_release", "model"), ("crop", "crop"),
                        ("feature_extractor", "feature_extractor"), ("license", "license"), ("sources", "sources")]}


def summary(inf: dict) -> dict:
    """The user-facing fields of an info (derived ones included): what the table shows without --verbose."""
    if "K" in inf:
        return {label: inf[k] for k, label in SUMMARY[".clcdict"] if k in inf}
    derived = {"size": f"{inf['width']}x{inf['height']}",
               "refs": (f"{len(inf['references'])} from dictionary {inf['dictionary_id']}" if inf["references"]
                        else "none") + (f", block copy {inf['copy_bytes']} bytes" if inf.get("copy_bytes") else ""),
               "slices_shown": f"{inf.get('slices_present', inf['slices'])} of {inf['slices']}"}
    if inf.get("residual_bytes"):
        bound = inf["near_lossless"]
        derived["residual_shown"] = (f"{'lossless' if bound == 0 else f'near-lossless, within ±{bound}'}, "
                                     f"{inf['residual_bytes']} bytes")
    full = inf | derived
    return {label: full[k] for k, label in SUMMARY[".clc"]
            if k in full and (full[k] not in (None, {}, 0) or k in ("refs", "bytes", "metadata"))}


def info_cell(key: str, value: object) -> str:
    if isinstance(value, float) and key == "bpp":
        return f"{value:.4f}"
    if key == "sources" and isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:5])
        return shown + (f", ... ({len(value) - 5} more)" if len(value) > 5 else "")
    if key == "bytes" and isinstance(value, int) and value >= 1 << 20:
        return f"{value} ({value / (1 << 20):.1f} MiB)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v} bytes" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


@app.command(no_args_is_help=True, epilog=EXIT_CODES_HELP, help=(
        "Show what a .clc file holds: size, mode, bytes, bpp, quality, model release, references, metadata "
        "(--verbose: every header field). Also describes .clcdict reference dictionaries.\n\n"
        + examples("clc info photo.clc", "clc info --json *.clc", "clc info src/clccodec/shipped/default.clcdict")))
def info(
    files: Annotated[list[str], typer.Argument(help=".clc or .clcdict files (or '-' for stdin).",
                                               show_default=False, metavar="FILE")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON with every field: an object for one file, "
                                           "an array for several (a file that cannot be read: its error).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Every header field (ids, string lengths, "
                                          "section offsets).")] = False,
) -> None:
    def go() -> None:
        import json

        failures, last, found = 0, 1, []
        for f in files:
            try:
                inf = describe(read_input(f))
            except ClcError as e:
                where = "" if f in str(e) else f"{f}: "
                err.print(f"clc: error: {where}{e}", markup=False)
                failures += 1
                last = e.exit_code
                found.append({"file": f, "error": str(e)})
                continue
            found.append({"file": f} | inf)
            if json_out:
                continue
            t = Table(title=f, show_header=False, title_justify="left")
            t.add_column(style="bold")
            t.add_column()
            for k, v in (inf if verbose else summary(inf)).items():
                t.add_row(k, info_cell(k, v))
            out.print(t)
        if json_out:
            out.print(json.dumps(found[0] if len(files) == 1 else found), markup=False)
        if failures:
            raise typer.Exit(last if len(files) == 1 else EXIT_BATCH_FAILED)

    guard(go)
