"""benchmarks/ stays small and runnable: every script there has a smoke run here (a fresh process, the tiny random
model, tiny synthetic images, one quality, one repeat), and no script patches the library or reaches into its
private names. The numbers are meaningless (random weights); what is checked is that each script runs to the end
and writes what it promises."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .conftest import REPO, synthetic_photo

BENCH = REPO / "benchmarks"
HELPERS = {"common.py"}  # imported by the scripts, not run
MAX_SCRIPTS = 16


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.iterdir() if p.suffix in (".py", ".sh") and p.name not in HELPERS)


def run(script: str, *args: object, env: dict | None = None, cwd: Path | None = None) -> str:
    """Run benchmarks/SCRIPT in a fresh process (one torch thread: smoke runs, a shared machine); its stdout."""
    cmd = ["bash", str(BENCH / script)] if script.endswith(".sh") else [sys.executable, str(BENCH / script)]
    base = {k: v for k, v in os.environ.items() if k not in ("CLC_MODEL", "CLC_DICTIONARY", "CLC_DEBUG")}
    full_env = base | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"} | (env or {})
    r = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd or REPO,
                       timeout=300)
    assert r.returncode == 0, f"{script} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two small photo-like images named like Kodak's."""
    d = tmp_path_factory.mktemp("photos")
    for i in range(2):
        Image.fromarray(synthetic_photo(64, 96, seed=i)).save(d / f"kodim{i + 1:02d}.png")
    return d


def read(path: Path) -> dict:
    return json.loads(path.read_text())


# -- one smoke run per script ----------------------------------------------------------------------------------------


def smoke_kodak_rd(tmp: Path, model: Path, photos: Path) -> None:
    out = tmp / "v0"
    run("kodak_rd.sh", "--quality", "1", "--codecs", "jpeg", "--anchors", "vtm",
        env={"PYTHON": sys.executable, "KODAK": str(photos), "OUT": str(out), "MODEL": str(model), "DICT": "none",
             "REFS": "0", "DEVICE": "cpu"})
    assert {p.name for p in out.iterdir()} == {f"kodak_rd.{x}" for x in ("json", "png", "txt", "md")}
    res = read(out / "kodak_rd.json")
    assert len(res["results"]["bpp"]) == 1 and res["results"]["bpp"][0] > 0 and len(res["images"]) == 2
    assert "| 1 | " in (out / "kodak_rd.md").read_text()


def smoke_rd_table(tmp: Path, model: Path, photos: Path) -> None:
    # the current release's own results: the script rewrites the tables kept beside them
    from clccodec.model.releases import RELEASED_MODELS

    res = BENCH / "results" / RELEASED_MODELS[-1].weights
    assert run("rd_table.py", res / "kodak_rd.json") == (res / "kodak_rd.md").read_text()
    vs = run("rd_table.py", res / "kodak_rd.json", "--vs", res / "norefs" / "kodak_rd.json")
    assert vs == (res / "kodak_m3_vs_m0.md").read_text() and " %" in vs


def smoke_compare(tmp: Path, model: Path, photos: Path) -> None:
    out = run("compare.py", "--before", REPO / "src", "--after", REPO / "src", "--rounds", "1", "--repeat", "1",
              "--size", "64x64", "--refs", "0", "--model", model, "--dict", "none", "--no-cli",
              "--json", tmp / "compare.json")
    med = read(tmp / "compare.json")["medians"]
    assert med["before"]["encode_s"] > 0 and med["after"]["decode_exact_s"] > 0
    assert "wrote the same number of bytes" in out


def smoke_speed(tmp: Path, model: Path, photos: Path) -> None:
    run("speed.py", "--model", model, "--dict", "none", "--device", "cpu", "--sizes", "64x64", "--repeat", "1",
        "--refs", "0", "--exact", "--json", tmp / "speed.json")
    row = read(tmp / "speed.json")["results"][0]
    assert row["width"] == 64 and row["encode_s"] > 0 and row["decode_s"] > 0 and row["decode_exact_s"] > 0
    assert row["encode_peak_rss_mib"] >= row["base_rss_mib"] * 0.5
    assert "openblas" in row["blas"]  # the kernels beside the timings


def smoke_latency(tmp: Path, model: Path, photos: Path) -> None:
    run("latency.py", "--model", model, "--size", "64x64", "--repeat", "1", "--cli-repeat", "0", "--refs", "0",
        "--large", "96x80", "--json", tmp / "latency.json")
    res = read(tmp / "latency.json")
    assert res["encode_s"] > 0 and res["decode_exact_s"] > 0 and res["fast_vs_exact_max_abs"] <= 3
    assert res["lite_vs_exact_max_abs"] <= 3 and res["lite_fresh_process"]["torch"] is False
    assert res["encode_numpy_s"] > 0 and isinstance(res["numpy_file_is_torchs"], bool)
    assert res["avif"]["bytes"] > 0 and res["avif"]["process_encode_s"] > res["avif"]["encode_s"] > 0
    assert "openblas" in res["blas"]["in_process"] and "openblas" in res["blas"]["clc"]
    large = res["large"]
    assert large["size"] == "96x80" and large["bytes"] > 0
    assert all(large[k]["wall_s"] > 0 and large[k]["peak_mib"] > 10 for k in ("encode", "decode", "avif_encode"))


def smoke_batch(tmp: Path, model: Path, photos: Path) -> None:
    run("batch.py", "--model", model, "--images", "2", "--size", "64x48", "--refs", "0", "--ray", "--build-dict",
        "2", "--json", tmp / "batch.json")
    res = read(tmp / "batch.json")
    assert res["encode"]["images_per_s"] > 0 and len(res["decode"]["per_file_s"]) == 2
    assert res["ray"]["byte_identical"] is True and res["ray"]["ray_s"] > 0 and res["ray"]["ray_running_s"] > 0
    assert res["build_dict"]["ray"]["crops"] == res["build_dict"]["local"]["crops"] > 0
    assert "openblas" in res["blas"]


def smoke_fast_vs_exact(tmp: Path, model: Path, photos: Path) -> None:
    run("fast_vs_exact.py", photos, "-q", "2", "--limit", "1", "--refs", "0", "--model", model,
        "--json", tmp / "fve.json")
    row = read(tmp / "fve.json")["results"][0]
    assert row["images"] == 1 and row["fast"]["max_abs_diff"] <= 3 and row["lite"]["max_abs_diff"] <= 3
    e = row["numpy_encoder"]
    assert e["identical_files"] in (0, 1) and abs(e["bytes_over_torch"] - 1) < 0.05 and e["encode_s"] > 0


def smoke_cross_device(tmp: Path, model: Path, photos: Path) -> None:
    common = ["--model", model, "--dict", "none", "--device", "cpu"]
    run("cross_device.py", "encode", photos, "--qualities", "2", "--refs", "0", "--out", tmp / "x", *common)
    out = run("cross_device.py", "verify", tmp / "x", "--json", tmp / "x.json", *common)
    summary = read(tmp / "x.json")["summary"]
    assert summary["files"] == 2 and summary["identical"] == 2 and "2 of 2 files decode identically" in out


def smoke_effort_rd(tmp: Path, model: Path, photos: Path) -> None:
    run("effort_rd.py", photos, "--efforts", "0", "--quality", "2", "--limit", "1", "--model", model,
        "--json", tmp / "effort.json", "--md", tmp / "effort.md")
    res = read(tmp / "effort.json")
    assert res["points"][0]["bpp"] > 0 and res["summary"][0]["effort"] == 0
    assert "| 0 | 2 | " in (tmp / "effort.md").read_text()
    # --held-out: only the training folder's validation photos (the first held-out name, and one trained on)
    from clccodec.training.data import is_validation

    train = tmp / "train"
    train.mkdir()
    held = next(n for n in (f"p{i}.png" for i in range(1000)) if is_validation(Path(n), 0.05))
    kept = next(n for n in (f"p{i}.png" for i in range(1000)) if not is_validation(Path(n), 0.05))
    for i, name in enumerate((held, kept)):
        Image.fromarray(synthetic_photo(64, 96, seed=i)).save(train / name)
    run("effort_rd.py", train, "--held-out", "--efforts", "0", "--quality", "2", "--model", model, "--dict", "none",
        "--json", tmp / "held.json")
    assert read(tmp / "held.json")["images"] == [Path(held).stem]


def smoke_defaults_lossless(tmp: Path, model: Path, photos: Path) -> None:
    run("defaults_lossless.py", photos, "--limit", "1", "--qualities", "5", "--near", "1", "--model", model,
        "--json", tmp / "d.json", "--md", tmp / "d.md")
    rows = {r["codec"]: r for r in read(tmp / "d.json")["rows"]}
    assert rows["clc --near-lossless 1"]["max_error"] <= 1 and rows["PNG (Pillow, optimize)"]["max_error"] == 0
    assert rows["clc q 5 (default)"]["bpp"] > 0 and "| WebP (cwebp default: q 75, method 4) |" in (tmp / "d.md").read_text()


def smoke_prefix_rd(tmp: Path, model: Path, photos: Path) -> None:
    run("prefix_rd.py", photos, "--limit", "1", "--refs", "0", "--model", model, "--json", tmp / "prefix.json")
    row = read(tmp / "prefix.json")["per_image"][0]
    ends = [p["bytes"] for p in row["prefixes"]]
    assert len(ends) >= 2 and ends == sorted(ends) and ends[-1] == row["bytes"]


def smoke_collection_rd(tmp: Path, model: Path, photos: Path) -> None:
    folder = tmp / "collection"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_photo(64, 96, seed=10 + i)).save(folder / f"view{i}.png")
    (folder / "split.json").write_text(json.dumps({"dictionary": ["view0.png", "view1.png"], "test": ["view2.png"]}))
    run("collection_rd.py", folder, "--refs", "1", "--quality", "2", "--crop", "64", "-k", "4", "--model", model,
        "--classical", "webp", "--json", tmp / "coll.json")
    res = read(tmp / "coll.json")
    assert res["dictionary"]["K"] == 2 and res["test_images"] == ["view2"] and res["points"][0]["bpp"] > 0
    webp = res["classical"]["webp"]["points"]  # WebP's whole sweep on the same photo, low rate first
    assert len(webp) == 11 and webp[0]["bpp"] < webp[-1]["bpp"] and list(res["summary"][0]["vs"]) == ["webp"]


def smoke_fuzz(tmp: Path, model: Path, photos: Path) -> None:
    run("fuzz.py", "--cases", "200", "--decode-every", "5", "--json", tmp / "fuzz.json")
    res = read(tmp / "fuzz.json")
    assert res["cases"] >= 200 and res["failures"] == {}
    assert set(res["readers"]) == {"container", "copy section", "clcdict", "image", "alpha section", "pillow", "residual",
                                    "decoder"}
    assert all(r.get("refused", 0) > 0 for r in res["readers"].values())


def smoke_train_profile(tmp: Path, model: Path, photos: Path) -> None:
    data = tmp / "train"
    data.mkdir()
    for i in range(2):  # the trainer's reference crops are 256 pixels
        Image.fromarray(synthetic_photo(256, 256, seed=20 + i)).save(data / f"p{i}.png")
    run("train_profile.py", "--data", data, "--model", model, "--photos", "2", "--batch", "1", "--crop", "64",
        "--refs", "1", "--repeat", "1", "--steps", "1", "--threads", "1", "--json", tmp / "train.json")
    res = read(tmp / "train.json")
    assert res["step_ms"] > 0 and res["crops_per_s"] > 0 and len(res["parts_ms"]) >= 8


def smoke_retrieval_scale(tmp: Path, model: Path, photos: Path) -> None:
    run("retrieval_scale.py", "--sizes", "500,2000", "--images", "2", "--json", tmp / "ret.json")
    rows = read(tmp / "ret.json")["results"]
    assert [r["entries"] for r in rows] == [500, 2000] and rows[1]["synthetic"] is True
    assert all(0 <= r["recall_at_3"] <= 1 and r["query_ivf_ms"] > 0 for r in rows)


SMOKE = {
    "kodak_rd.sh": smoke_kodak_rd, "rd_table.py": smoke_rd_table, "compare.py": smoke_compare,
    "speed.py": smoke_speed, "latency.py": smoke_latency, "batch.py": smoke_batch,
    "fast_vs_exact.py": smoke_fast_vs_exact, "cross_device.py": smoke_cross_device, "effort_rd.py": smoke_effort_rd,
    "prefix_rd.py": smoke_prefix_rd, "collection_rd.py": smoke_collection_rd,
    "train_profile.py": smoke_train_profile, "fuzz.py": smoke_fuzz, "defaults_lossless.py": smoke_defaults_lossless,
    "retrieval_scale.py": smoke_retrieval_scale,
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_script_smoke_run(script, tmp_path, tiny_model_path, photos):
    SMOKE[script](tmp_path, tiny_model_path, photos)


# -- what benchmarks/ may hold ---------------------------------------------------------------------------------------


def test_every_script_has_a_smoke_run_and_there_are_few():
    names = {p.name for p in scripts()}
    assert names == set(SMOKE), f"scripts without a smoke run: {sorted(names - set(SMOKE))}"
    assert len(names) + len(HELPERS) <= MAX_SCRIPTS


def private_uses(source: str) -> list[str]:
    """setattr calls, and private names (`x._name`, `from clccodec... import _name`) a script touches."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            found.append(f"line {node.lineno}: {node.func.id}(...)")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clccodec"):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_script_patches_the_library_or_uses_its_private_names():
    for path in sorted(BENCH.iterdir()):
        if path.suffix not in (".py", ".sh"):
            continue
        text = path.read_text()
        assert "monkeypatch" not in text and "setattr(" not in text, path.name
        if path.suffix == ".py":
            assert private_uses(text) == [], path.name
        # Python run by a script from a string (compare.py, latency.py) is checked as well
        for node in ast.walk(ast.parse(text)) if path.suffix == ".py" else ():
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import clccodec" in node.value:
                try:
                    assert private_uses(node.value) == [], path.name
                except SyntaxError:  # a format string with %r and the like: the text checks above cover it
                    pass


def test_results_hold_one_folder_per_release():
    from clccodec.model.releases import RELEASED_MODELS

    releases = {r.weights for r in RELEASED_MODELS}
    folders = list((BENCH / "results").iterdir())
    assert folders and all(p.is_dir() and p.name in releases for p in folders), folders
    for folder in folders:  # measured with that release's weights
        release = next(r for r in RELEASED_MODELS if r.weights == folder.name)
        for run_json in (folder / "kodak_rd.json", folder / "norefs" / "kodak_rd.json"):
            assert release.model_id.startswith(read(run_json)["meta"]["model_id"]), run_json
