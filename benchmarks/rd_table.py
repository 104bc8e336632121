#!/usr/bin/env python
"""Markdown tables (for README / MODEL_CARD) from a `clc eval --json` file.

    python benchmarks/rd_table.py benchmarks/results/v14/kodak_rd.json > benchmarks/results/v14/kodak_rd.md
    python benchmarks/rd_table.py benchmarks/results/v14/kodak_rd.json --vs benchmarks/results/v14/norefs/kodak_rd.json

With --vs, only the BD-rates of the first run against the second (same images: e.g. M = 3 against M = 0).
"""

from __future__ import annotations

import json
import sys


def fmt_bd(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['value']:+.1f} %" if r["value"] is not None else "n/a"


def render(res: dict) -> str:
    lines = [f"### {res['name']} on {res.get('source', '?')} ({len(res.get('images', []))} images)", "",
             "| quality | bpp | PSNR-RGB dB | MS-SSIM-RGB | encode s | decode s |", "|---:|---:|---:|---:|---:|---:|"]
    a = res["results"]
    for i, q in enumerate(res["quality"]):
        lines.append(f"| {q:g} | {a['bpp'][i]:.4f} | {a['psnr-rgb'][i]:.2f} | {a['ms-ssim-rgb'][i]:.4f} | "
                     f"{a['encoding_time'][i]:.2f} | {a['decoding_time'][i]:.2f} |")
    env = res.get("environment", {})
    lines += ["", f"Times: mean wall seconds per image on {env.get('device', '?')} ({env.get('cpu_count', '?')} CPU "
              f"cores, torch {env.get('torch', '?')}, {env.get('torch_threads', '?')} threads"
              + (f", {env['gpu']}" if env.get("gpu") else "") + ").", ""]
    bd = res.get("bd_rate", {})
    if bd.get("rows"):
        lines += [f"BD-rate of {bd.get('test')}. Method: {bd.get('method')}.", "",
                  "| against | PSNR, <= 1 bpp | PSNR, all | MS-SSIM dB, all | that curve vs VTM (<= 1 bpp) |",
                  "|---|---:|---:|---:|---:|"]
        for r in bd["rows"]:
            lines.append(f"| {r['label']} | {fmt_bd(r['bd_rate_psnr_le1bpp'])} | {fmt_bd(r['bd_rate_psnr_all'])} | "
                         f"{fmt_bd(r['bd_rate_msssim_db_all'])} | {fmt_bd(r['this_vs_vtm_psnr_le1bpp'])} |")
        if not bd.get("anchors_comparable", True):
            lines += ["", "Note: not the full 24-image Kodak set, so BD-rates against the published anchors are "
                      "indicative only."]
    for note in res.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def render_vs(test: dict, ref: dict) -> str:
    """BD-rates of run `test` against run `ref` (both `clc eval --json`, the same images)."""
    from clccodec.evaluation.bd import bd_rate_result, msssim_db

    if sorted(test.get("images", [])) != sorted(ref.get("images", [])):
        raise SystemExit("rd_table.py --vs: the two runs did not encode the same images")
    t, r = test["results"], ref["results"]
    cells = [bd_rate_result(r["bpp"], r["psnr-rgb"], t["bpp"], t["psnr-rgb"], 1.0),
             bd_rate_result(r["bpp"], r["psnr-rgb"], t["bpp"], t["psnr-rgb"]),
             bd_rate_result(r["bpp"], msssim_db(r["ms-ssim-rgb"]), t["bpp"], msssim_db(t["ms-ssim-rgb"]))]
    fmt = [f"{c.value:+.2f} %" if c.value is not None else "n/a" for c in cells]
    return (f"BD-rate of {test['name']} against {ref['name']} ({len(test['images'])} images)\n\n"
            "| PSNR, <= 1 bpp | PSNR, all | MS-SSIM dB, all |\n|---:|---:|---:|\n"
            f"| {' | '.join(fmt)} |\n")


def main(argv: list[str]) -> int:
    vs = None
    if len(argv) == 3 and argv[1] == "--vs":
        vs = argv[2]
    elif len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        res = json.load(fh)
    if vs is None:
        sys.stdout.write(render(res))
    else:
        with open(vs) as fh:
            sys.stdout.write(render_vs(res, json.load(fh)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
