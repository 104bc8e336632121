"""`clc info`: what a .clc file or a .clcdict holds (reads headers only: no torch, no model)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import ClcError
from .app import app, err, guard, out
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


def info_cell(key: str, value: object) -> str:
    if isinstance(value, float) and key == "bpp":
        return f"{value:.4f}"
    if key == "sources" and isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:5])
        return shown + (f", ... ({len(value) - 5} more)" if len(value) > 5 else "")
    if key == "bytes" and isinstance(value, int) and value >= 1 << 20:
        return f"{value} ({value / (1 << 20):.1f} MiB)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@app.command(no_args_is_help=True)
def info(
    files: Annotated[list[str], typer.Argument(help=".clc or .clcdict files (or '-' for stdin).",
                                               show_default=False, metavar="FILE")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what a .clc file holds: size, quality, model and dictionary ids, references, bytes per part, bpp.

    Also describes .clcdict reference dictionaries (K, crop size, feature extractor, model id, size, provenance).

    Examples: clc info photo.clc | clc info src/clccodec/shipped/default.clcdict
    """

    def go() -> None:
        import json

        failures, last = 0, 1
        for f in files:
            try:
                inf = describe(read_input(f))
            except ClcError as e:
                err.print(f"clc: error: {f}: {e}", markup=False)
                failures += 1
                last = e.exit_code
                continue
            if json_out:
                out.print(json.dumps({"file": f} | inf), markup=False)
                continue
            t = Table(title=f, show_header=False, title_justify="left")
            t.add_column(style="bold")
            t.add_column()
            for k, v in inf.items():
                t.add_row(k, info_cell(k, v))
            out.print(t)
        if failures:
            raise typer.Exit(last if len(files) == 1 else 1)

    guard(go)
