"""Batch jobs on Ray (clccodec.distributed, `--engine ray`) on a local Ray runtime: the same bytes as the local
CLI, a manifest row per input, bad inputs and a killed worker never fail the job, a rerun writes nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_one_line_error, run_clc, synthetic_photo

ray = pytest.importorskip("ray")

from clccodec.distributed import decode_dataset, encode_dataset  # noqa: E402
from clccodec.distributed import storage  # noqa: E402


@pytest.fixture(scope="module")
def runtime():
    """One local Ray runtime for the module (jobs join it instead of starting their own)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three small photos, one in a subfolder, one with an ICC profile and EXIF, one with alpha."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    Image.fromarray(synthetic_photo(64, 96, 0)).save(root / "a.png")
    exif = Image.Exif()
    exif[0x010F] = "clccodec test camera"
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(synthetic_photo(80, 64, 1)).save(root / "sub" / "b.jpg", quality=95, exif=exif.tobytes(),
                                                     icc_profile=icc)
    rgba = np.dstack([synthetic_photo(48, 48, 2), np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))])
    Image.fromarray(rgba, "RGBA").save(root / "c.png")
    (root / ".hidden.png").write_bytes(b"not listed")
    (root / "notes.txt").write_text("not an image")
    return root


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(path: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in map(json.loads, path.read_text().splitlines())}


def test_cli_ray_files_are_the_local_cli_bytes(photos, tmp_path):
    """`clc encode DIR -o OUT --engine ray` (its own local Ray runtime) writes what `clc encode` writes."""
    srcs = [str(photos / "a.png"), str(photos / "sub" / "b.jpg"), str(photos / "c.png")]
    r = run_clc("encode", *srcs, "-o", f"{tmp_path}/local/", "-q", "2.5", "--quiet")
    assert r.returncode == 0, r.stderr.decode()
    r = run_clc("encode", str(photos), "-o", str(tmp_path / "ray"), "-q", "2.5", "--engine", "ray", "--workers", "2")
    assert r.returncode == 0, r.stderr.decode()
    assert "3 encoded, 0 already complete, 0 failed" in r.stderr.decode()
    local, dist = files(tmp_path / "local"), files(tmp_path / "ray")
    assert dist.pop("manifest.jsonl")
    assert dist == {"a.clc": local["a.clc"], "sub/b.clc": local["b.clc"], "c.clc": local["c.clc"]}
    import clccodec

    info = clccodec.read_info(tmp_path / "ray" / "sub" / "b.clc")
    assert info["metadata"]["exif"] and info["metadata"]["icc"]  # read as bytes: the metadata is kept
    assert clccodec.decode(tmp_path / "ray" / "c.clc").mode == "RGBA"


def test_bad_inputs_are_rows_and_the_job_completes(runtime, photos, tmp_path, tiny_model_path):
    src = tmp_path / "src"
    shutil.copytree(photos, src)
    (src / "broken.png").write_bytes((photos / "a.png").read_bytes()[:200])
    vanished = tmp_path / "gone.png"  # named, but not there when its worker reads it
    report = encode_dataset([src, vanished], tmp_path / "out", quality=2, model=tiny_model_path,
                            dictionary=False, workers=2)
    rows = manifest(tmp_path / "out" / "manifest.jsonl")
    assert set(rows) == {"a.png", "b.jpg", "c.png", "broken.png", "gone.png"}
    assert [r["input"] for r in report.rows] == sorted(r["input"] for r in report.rows)
    assert rows["gone.png"]["status"] == "failed" and rows["gone.png"]["error"] == f"{vanished}: no such file"
    assert rows["broken.png"]["status"] == "failed" and "cannot decode image" in rows["broken.png"]["error"]
    assert rows["broken.png"]["error"].startswith(str(src / "broken.png"))
    for name in ("a.png", "b.jpg", "c.png"):
        row = rows[name]
        assert row["status"] == "written" and row["error"] is None, row
        data = Path(row["output"]).read_bytes()
        assert row["bytes"] == len(data) and row["bpp"] == pytest.approx(8 * len(data) / (row["width"] * row["height"]))
        assert row["quality"] == 2 and row["refs"] == 0 and row["seconds"] > 0
    assert not (tmp_path / "out" / "broken.clc").exists() and report.count("failed") == 2
    leftovers = [p for p in (tmp_path / "out").rglob(".*")]
    assert leftovers == []  # no temporary files


def test_rerun_writes_nothing_and_repairs_incomplete_outputs(runtime, photos, tmp_path, tiny_model_path):
    kw = dict(quality=3, model=tiny_model_path, dictionary=False, workers=1)
    first = encode_dataset([photos], tmp_path / "out", **kw)
    assert first.count("written") == 3
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "out").rglob("*.clc")}
    again = encode_dataset([photos], tmp_path / "out", **kw)
    assert again.count("skipped") == 3 and again.count("written") == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "out").rglob("*.clc")} == before
    assert {r["bytes"] for r in again.rows} == {len(b) for _, b in before.values()}  # (what is there)
    cut = tmp_path / "out" / "sub" / "b.clc"  # a half-written file at the final name (another tool's crash)
    cut.write_bytes(before[cut][1][:-10])
    third = encode_dataset([photos], tmp_path / "out", **kw)
    assert {Path(r["output"]).name: r["status"] for r in third.rows} == {"a.clc": "skipped", "b.clc": "written",
                                                                          "c.clc": "skipped"}
    assert cut.read_bytes() == before[cut][1]
    forced = encode_dataset([photos], tmp_path / "out", force=True, **kw)
    assert forced.count("written") == 3


def test_a_worker_killed_mid_batch_is_retried(runtime, photos, tmp_path, tiny_model_path):
    kw = dict(quality=3, model=tiny_model_path, dictionary=False, workers=1, batch_size=3)
    marker = tmp_path / "crashed"
    report = encode_dataset([photos], tmp_path / "out", _crash_once=str(marker), **kw)
    assert marker.exists()  # a worker did die after writing the first output of its batch
    assert report.count("failed") == 0 and len(report.rows) == 3
    assert sorted(r["status"] for r in report.rows) == ["skipped", "written", "written"]  # the retry kept the first
    clean = encode_dataset([photos], tmp_path / "clean", **kw)
    assert clean.count("written") == 3
    got, want = files(tmp_path / "out"), files(tmp_path / "clean")
    assert got.pop("manifest.jsonl") and want.pop("manifest.jsonl")
    assert got == want


def test_an_input_that_kills_every_worker_is_a_failed_row(runtime, photos, tmp_path, tiny_model_path):
    """A batch whose worker dies on every try (Ray restarts it MAX_RETRIES times) fails its input, not the job."""
    from clccodec.distributed.jobs import MAX_RETRIES

    kw = dict(quality=3, model=tiny_model_path, dictionary=False, workers=2, batch_size=1)
    report = encode_dataset([photos], tmp_path / "out", _crash_on="b.jpg", **kw)
    rows = {Path(r["input"]).name: r for r in report.rows}
    assert [rows[n]["status"] for n in ("a.png", "b.jpg", "c.png")] == ["written", "failed", "written"]
    assert f"b.jpg: its worker died (retried {MAX_RETRIES} times)" in rows["b.jpg"]["error"]
    assert sorted(files(tmp_path / "out")) == ["a.clc", "c.clc", "manifest.jsonl"]
    assert manifest(tmp_path / "out" / "manifest.jsonl")["b.jpg"]["status"] == "failed"


def test_more_workers_than_the_cluster_holds_still_finish_the_job(runtime, photos, tmp_path, tiny_model_path):
    """4 workers of one CPU on a 2-CPU runtime: the two that cannot be placed get no work, and the job ends."""
    report = encode_dataset([photos], tmp_path / "out", quality=3, model=tiny_model_path, dictionary=False,
                            workers=4)
    assert report.count("written") == 3 and report.workers == 4


def test_workers_that_cannot_start_fail_the_job_with_their_error(runtime, photos, tmp_path, tiny_model_path):
    """A dictionary that does not fit the model fails in every worker's constructor: the job stops with that
    error (not a failed row per input), and the manifest is still written."""
    from clccodec.defaults import default_dictionary_path
    from clccodec.errors import WorkerLostError

    with pytest.raises(WorkerLostError, match="no Ray worker could start: DictionaryMismatchError: dictionary"):
        encode_dataset([photos], tmp_path / "out", quality=3, model=tiny_model_path,
                       dictionary=default_dictionary_path(), workers=2)
    assert (tmp_path / "out" / "manifest.jsonl").read_text() == ""


def test_decode_dataset_matches_the_local_decoder(runtime, photos, tmp_path):
    import clccodec
    import pyarrow.parquet as pq

    enc = encode_dataset([photos / "a.png", photos / "c.png"], tmp_path / "clc", quality=2, workers=2)
    assert enc.count("written") == 2
    corrupt = tmp_path / "clc" / "bad.clc"
    corrupt.write_bytes(b"CLC" + b"\0" * 40)
    # the exact synthesis: the fast one may differ by a last bit between thread counts (docs/format.md), and
    # the workers run with one BLAS thread each
    report = decode_dataset([tmp_path / "clc"], tmp_path / "png", workers=2, manifest=tmp_path / "m.parquet",
                            exact=True)
    table = pq.read_table(tmp_path / "m.parquet").to_pylist()
    assert [Path(r["input"]).name for r in table] == ["a.clc", "bad.clc", "c.clc"]
    bad = table[1]
    assert bad["status"] == "failed" and bad["error"] and report.count("failed") == 1
    for name in ("a", "c"):
        want = clccodec.decode(tmp_path / "clc" / f"{name}.clc", exact=True)
        with Image.open(tmp_path / "png" / f"{name}.png") as got:
            assert got.mode == want.mode and np.array_equal(np.asarray(got), np.asarray(want))
    jpgs = decode_dataset([tmp_path / "clc" / "a.clc"], tmp_path / "jpg", output_format="jpg", output_quality=80)
    assert jpgs.count("written") == 1
    with Image.open(tmp_path / "jpg" / "a.jpg") as im:
        assert im.format == "JPEG"


def test_cli_engine_usage_errors(tmp_path, photo_png):
    assert_one_line_error(run_clc("encode", str(photo_png), "--engine", "ray"), "--engine ray writes into a folder")
    assert_one_line_error(run_clc("encode", "-", "-o", str(tmp_path), "--engine", "ray"), "not stdin")
    assert_one_line_error(run_clc("encode", str(photo_png), "--address", "auto"), "--address needs --engine ray")
    assert_one_line_error(run_clc("decode", "x.clc", "--workers", "2"), "--workers needs --engine ray")
    assert_one_line_error(run_clc("encode", str(photo_png), "-o", str(tmp_path), "--engine", "spark"),
                          "--engine must be 'local' or 'ray'")
    with pytest.raises(clccodec_usage_error()):
        encode_dataset([photo_png], tmp_path, quality=99)
    with pytest.raises(clccodec_usage_error(), match="would both write"):
        encode_dataset([photo_png, photo_png.with_suffix(".jpg")], tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any work


def clccodec_usage_error():
    from clccodec.errors import UsageError

    return UsageError


def test_storage_writes_atomically_and_lists_like_the_cli(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "x.clc"
    storage.write_atomic(str(target), b"abc")
    assert target.read_bytes() == b"abc" and (target.stat().st_mode & 0o777) == 0o666 & ~current_umask()

    def fail(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        storage.write_atomic(str(target), b"new contents")
    monkeypatch.undo()
    assert target.read_bytes() == b"abc" and sorted(p.name for p in target.parent.iterdir()) == ["x.clc"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "P.PNG").write_bytes(b"")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "q.png").write_bytes(b"")
    assert storage.list_files(str(tmp_path), frozenset({".png"})) == ["a/P.PNG"]
    assert storage.read(f"file://{target}") == b"abc"
    with pytest.raises(Exception, match="no such file"):
        storage.read(str(tmp_path / "nothing"))


def current_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_manifest_bytes_are_json_lines(runtime, tmp_path, tiny_model_path, photo_png):
    report = encode_dataset([photo_png], tmp_path, model=tiny_model_path, dictionary=False, quality=1)
    line = (tmp_path / "manifest.jsonl").read_text()
    assert line.count("\n") == 1 and json.loads(line) == report.rows[0]
    assert list(json.loads(line)) == ["input", "output", "status", "bytes", "bpp", "quality", "refs", "width",
                                      "height", "seconds", "error"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collection")
    for i in range(5):
        Image.fromarray(synthetic_photo(128 + 32 * (i % 2), 160, seed=i)).save(root / f"img{i}.png")
    Image.fromarray(synthetic_photo(40, 40, 9)).save(root / "small.png")  # smaller than a crop: skipped
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_build_dict_on_ray_is_the_local_build(runtime, collection, tiny_model_path):
    from clccodec.dictionary.build import BuildOptions, build_dictionary
    from clccodec.distributed.dictionary import build_dictionary_on_ray
    from clccodec.model.weights import load_weights

    opts = BuildOptions(crop=64, clusters=6, pictures=True, batch=3)
    local, rep_local = build_dictionary(collection, load_weights(tiny_model_path), opts)
    dist, rep_dist = build_dictionary_on_ray(collection, tiny_model_path, opts, workers=2)
    assert dist.id == local.id and len(dist) == 6  # the id covers the values and the pictures
    assert dist.data.provenance["entries"] == local.data.provenance["entries"]
    assert dist.data.provenance["sources"] == local.data.provenance["sources"]
    assert sorted(rep_dist.skipped) == sorted(rep_local.skipped) and len(rep_dist.skipped) == 2
    np.testing.assert_allclose(dist.data.keys, local.data.keys, atol=1e-4)
    assert rep_dist.crops == rep_local.crops


def test_cli_build_dict_engine_ray(collection, tiny_model_path, tmp_path):
    out = tmp_path / "d.clcdict"
    r = run_clc("build-dict", str(collection), "-o", str(out), "--crop", "64", "-k", "4", "--model",
                str(tiny_model_path), "--engine", "ray", "--workers", "1", "--kmeans", "faiss", "--quiet")
    assert r.returncode == 0, r.stderr.decode()
    from clccodec.dictionary.store import ReferenceDictionary

    d = ReferenceDictionary.load(out)
    assert len(d) == 4 and d.data.provenance["build"]["kmeans"] == "faiss"
    assert_one_line_error(run_clc("build-dict", str(collection), "-o", str(tmp_path / "x.clcdict"), "--workers", "2"),
                          "--workers needs --engine ray")


def test_workers_get_the_drivers_settings(tmp_path, monkeypatch, photo_png):
    """Workers may run in another folder or on another node: paths are made absolute and checked on the driver,
    and $CLC_MODEL / $CLC_DICTIONARY / $CLC_MAX_PIXELS travel with the job."""
    from clccodec.distributed.jobs import local_file, plan, worker_environment
    from clccodec.errors import UsageError

    monkeypatch.chdir(photo_png.parent)
    assert plan([photo_png.name], "out", frozenset({".png"}), ".clc") == [
        (str(photo_png), str(photo_png.parent / "out" / "photo.clc"))]
    assert local_file("model", photo_png.name) == str(photo_png) and local_file("dictionary", False) is False
    with pytest.raises(UsageError, match="no such file"):
        local_file("model", "missing.pt")
    with pytest.raises(UsageError, match="give a local path"):
        local_file("dictionary", "s3://bucket/d.clcdict")
    monkeypatch.delenv("CLC_MODEL", raising=False)
    monkeypatch.delenv("CLC_DICTIONARY", raising=False)
    monkeypatch.setenv("CLC_MAX_PIXELS", "1000")
    assert worker_environment() == {"env_vars": {"CLC_MAX_PIXELS": "1000"}}
    monkeypatch.setenv("CLC_MODEL", "m.pt")
    assert worker_environment()["env_vars"]["CLC_MODEL"] == str(photo_png.parent / "m.pt")
