"""The CLI checks before it works, exits with documented codes, and prints for people and scripts alike."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time

import pytest
from PIL import Image
from rich.console import Console

from clccodec.errors import EXIT_CODES

from .conftest import REPO, assert_one_line_error, run_clc, synthetic_photo


@pytest.fixture()
def workdir(tmp_path, photo_png):
    (tmp_path / "photo.png").write_bytes(photo_png.read_bytes())
    Image.fromarray(synthetic_photo(40, 48, seed=1)).save(tmp_path / "other.png")
    return tmp_path


def clc(workdir, model, *args, **kw):
    return run_clc(*args, env_extra={"CLC_MODEL": str(model), "CLC_DICTIONARY": str(workdir / "none")},
                   cwd=workdir, **kw)


# a model path that does not exist: a command that gets past its checks fails with exit 4 (model missing), so
# an exit 2 with the check's message proves the check ran before the model was loaded
NO_MODEL = "no-such-model.pt"


@pytest.mark.parametrize("args, needle", [
    (["encode", "photo.png", "-o", "missing/photo.clc"], "missing/photo.clc: output folder missing does not exist"),
    (["encode", "photo.png", "other.png", "-o", "single.clc"], "-o single.clc names one file, but 2 inputs"),
    (["encode", "nothere.png", "-o", "x.clc"], "nothere.png: no such file"),
    (["encode", "photo.png", "-o", "photo.png", "--force"], "overwrite the input"),
    (["decode", "x.clc", "-o", "x.gif"], "cannot write '.gif' images"),
])
def test_problems_are_refused_before_the_model_loads(workdir, args, needle):
    r = clc(workdir, NO_MODEL, *args)
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, needle)
    assert sorted(p.name for p in workdir.iterdir()) == ["other.png", "photo.png"]  # nothing written or created


def test_binary_output_to_a_terminal_is_refused_unless_forced(workdir):
    leader, follower = pty.openpty()
    try:
        env = dict(os.environ, CLC_MODEL=NO_MODEL)
        r = subprocess.run([sys.executable, "-m", "clccodec", "encode", "photo.png", "-o", "-"], stdout=follower,
                           stderr=subprocess.PIPE, cwd=workdir, env=env, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 2 and "refusing to write binary data to a terminal" in r.stderr.decode()


def test_exit_codes_of_each_kind(workdir, tiny_model_path):
    (workdir / "text.png").write_bytes(b"not an image")
    r = clc(workdir, tiny_model_path, "encode", "text.png")
    assert r.returncode == 5 and r.stderr.decode().count("text.png") == 1  # the path named once
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "text.png", "other.png", "-o", "out/")
    assert r.returncode == 1 and "2 encoded, 1 failed" in r.stderr.decode()
    (workdir / "bad.clc").write_bytes(b"CLC\x02" + bytes(20))
    assert clc(workdir, tiny_model_path, "decode", "bad.clc").returncode == 3
    assert clc(workdir, NO_MODEL, "decode", "out/photo.clc", "-o", "p.png").returncode == 4


def test_an_unreachable_target_warns_or_with_strict_target_fails(workdir, tiny_model_path):
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "t.clc", "--target-psnr", "90")
    err = r.stderr.decode()
    assert r.returncode == 0 and (workdir / "t.clc").exists()
    assert re.search(r"^clc: warning: photo.png: target 90.00 dB not met: reached .* dB at quality", err, re.M), err
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "s.clc", "--target-psnr", "90", "--strict-target")
    assert r.returncode == 6 and not (workdir / "s.clc").exists()
    assert_one_line_error(r, "target 90.00 dB not met")


def test_an_image_suffix_on_an_encode_output_is_warned_about(workdir, tiny_model_path):
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "coded.png")
    assert r.returncode == 0 and "clc: warning: coded.png: .clc data in a file named like an image" in r.stderr.decode()
    assert (workdir / "coded.png").read_bytes()[:3] == b"CLC"


def test_help_lists_the_exit_codes_examples_one_per_line_and_plain_types(workdir):
    for command in ("encode", "decode", "info"):
        r = clc(workdir, NO_MODEL, command, "--help")
        out = r.stdout.decode()
        assert r.returncode == 0 and "Exit codes:" in out
        for code, meaning in EXIT_CODES:
            assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:30])}", out, re.M), (command, code)
        assert not re.search(r"<[a-z\[\] ]+>", out), out  # no <float range>, <list[str]>, <str>
        assert re.search(rf"^\s+clc {command} \S+", out, re.M) and " | clc " not in out


def test_readme_lists_the_same_exit_codes():
    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", readme, re.M)
    assert [(int(c), m) for c, m in rows] == list(EXIT_CODES)


def test_info_json_is_valid_for_any_number_of_files_and_verbose_shows_internals(workdir, tiny_model_path):
    for name in ("photo", "other"):
        assert clc(workdir, tiny_model_path, "encode", f"{name}.png").returncode == 0
    one = json.loads(clc(workdir, tiny_model_path, "info", "photo.clc", "--json").stdout)
    assert one["file"] == "photo.clc" and one["width"] == 136
    r = clc(workdir, tiny_model_path, "info", "photo.clc", "other.clc", "missing.clc", "--json")
    many = json.loads(r.stdout)
    assert r.returncode == 1 and [m["file"] for m in many] == ["photo.clc", "other.clc", "missing.clc"]
    assert "no such file" in many[2]["error"] and many[1]["height"] == 40
    table = clc(workdir, tiny_model_path, "info", "photo.clc").stdout.decode()
    assert "136x96" in table and "bpp" in table and "tile_size" not in table and "slice_ends" not in table
    verbose = clc(workdir, tiny_model_path, "info", "photo.clc", "--verbose").stdout.decode()
    assert "tile_size" in verbose and "slice_ends" in verbose and "model_id" in verbose


def test_a_truncated_file_error_suggests_partial(workdir, tiny_model_path):
    assert clc(workdir, tiny_model_path, "encode", "photo.png").returncode == 0
    data = (workdir / "photo.clc").read_bytes()
    (workdir / "cut.clc").write_bytes(data[:-8])
    r = clc(workdir, tiny_model_path, "decode", "cut.clc")
    assert r.returncode == 3 and "--partial" in r.stderr.decode()
    assert clc(workdir, tiny_model_path, "decode", "cut.clc", "--partial").returncode == 0


def test_decode_output_quality_and_avif(workdir, tiny_model_path):
    assert clc(workdir, tiny_model_path, "encode", "photo.png").returncode == 0
    sizes = {}
    for q in ("30", "95"):
        assert clc(workdir, tiny_model_path, "decode", "photo.clc", "-o", f"q{q}.jpg", "-Q", q).returncode == 0
        sizes[q] = (workdir / f"q{q}.jpg").stat().st_size
    assert sizes["30"] < sizes["95"]
    assert clc(workdir, tiny_model_path, "decode", "photo.clc", "-o", "p.avif").returncode == 0
    assert Image.open(workdir / "p.avif").size == (136, 96)


def test_slow_work_shows_a_status_on_a_terminal_only(monkeypatch):
    from clccodec.cli import batch

    for terminal in (True, False):
        buf = io.StringIO()
        monkeypatch.setattr(batch, "err", Console(file=buf, force_terminal=terminal, width=80))
        with batch.SlowWorkStatus("encoding big.png", enabled=True, delay=0.05):
            time.sleep(0.5)
        with batch.SlowWorkStatus("encoding quick.png", enabled=True, delay=5.0):
            pass
        assert ("encoding big.png" in buf.getvalue()) == terminal and "quick.png" not in buf.getvalue()
    buf = io.StringIO()
    monkeypatch.setattr(batch, "err", Console(file=buf, force_terminal=True, width=80))
    with batch.SlowWorkStatus("encoding quiet.png", enabled=False, delay=0.05):  # --quiet, or a batch
        time.sleep(0.3)
    assert buf.getvalue() == ""


def test_a_named_pipe_input_is_read_once_by_the_job(workdir, tiny_model_path):
    """The checks before the work must not drain a pipe (clc decode <(curl ...) -o x.png)."""
    os.mkfifo(workdir / "pipe.png")
    data = (workdir / "photo.png").read_bytes()
    env = dict(os.environ, CLC_MODEL=str(tiny_model_path), CLC_DICTIONARY=str(workdir / "none"))
    proc = subprocess.Popen([sys.executable, "-m", "clccodec", "encode", "pipe.png", "-o", "p.clc"], cwd=workdir,
                            env=env, stderr=subprocess.PIPE)
    with open(workdir / "pipe.png", "wb") as fifo:
        fifo.write(data)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert (workdir / "p.clc").read_bytes()[:3] == b"CLC"
