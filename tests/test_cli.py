"""The real `clc` command in fresh processes: round trips, pipes, batches, and every way input can be bad."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from clccodec import Codec

from .conftest import assert_one_line_error, run_clc, synthetic_photo


@pytest.fixture()
def workdir(tmp_path, photo_png, tiny_model_path):
    (tmp_path / "photo.png").write_bytes(photo_png.read_bytes())
    return tmp_path


def clc(workdir, tiny_model_path, *args, **kw):
    return run_clc(*args, env_extra={"CLC_MODEL": str(tiny_model_path), "CLC_DICTIONARY": str(workdir / "none")},
                   cwd=workdir, **kw)


def test_encode_info_decode_round_trip(workdir, tiny_model_path):
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "photo.clc", "-q", "3.5")
    assert r.returncode == 0, r.stderr.decode()
    size = (workdir / "photo.clc").stat().st_size
    r = clc(workdir, tiny_model_path, "info", "photo.clc", "--json")
    assert r.returncode == 0
    assert f'"bytes": {size}' in r.stdout.decode()
    assert f'"bpp": {8 * size / (96 * 136)}' in r.stdout.decode()
    r = clc(workdir, tiny_model_path, "decode", "photo.clc", "-o", "out.png", "--exact")
    assert r.returncode == 0, r.stderr.decode()
    decoded = np.asarray(Image.open(workdir / "out.png"))
    expected = Codec(tiny_model_path, dictionary=False, device="cpu").encode_full(
        workdir / "photo.png", 3.5, 0, reconstruct=True, exact=True)
    assert expected.data == (workdir / "photo.clc").read_bytes()
    assert np.array_equal(decoded, expected.reconstruction)


def test_stdin_to_stdout_pipeline(workdir, tiny_model_path):
    png = (workdir / "photo.png").read_bytes()
    enc = clc(workdir, tiny_model_path, "encode", "-", "-o", "-", stdin=png)
    assert enc.returncode == 0 and enc.stdout[:3] == b"CLC"
    dec = clc(workdir, tiny_model_path, "decode", "-", "-o", "-", stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_batch_with_one_bad_file(workdir, tiny_model_path):
    for i in range(2):
        Image.fromarray(synthetic_photo(40, 48, seed=i)).save(workdir / f"img{i}.png")
    (workdir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    r = clc(workdir, tiny_model_path, "encode", "img0.png", "broken.png", "img1.png", "-o", "out")
    assert r.returncode != 0
    assert sorted(p.name for p in (workdir / "out").iterdir()) == ["img0.clc", "img1.clc"]
    err = r.stderr.decode()
    assert "broken.png" in err and "2 encoded, 1 failed" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["truncated", "bitflip", "empty", "foreign"])
def test_bad_clc_files(workdir, tiny_model_path, kind):
    assert clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "good.clc").returncode == 0
    good = (workdir / "good.clc").read_bytes()
    bad = {"truncated": good[: len(good) // 2], "bitflip": good[:30] + bytes([good[30] ^ 4]) + good[31:],
           "empty": b"", "foreign": (workdir / "photo.png").read_bytes()}[kind]
    (workdir / "bad.clc").write_bytes(bad)
    r = clc(workdir, tiny_model_path, "decode", "bad.clc", "-o", "bad.png")
    needle = {"truncated": "truncated", "bitflip": "corrupt", "empty": "empty", "foreign": "not a .clc"}[kind]
    assert_one_line_error(r, needle)
    assert not (workdir / "bad.png").exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".bad")]  # no temporary left behind
    assert (workdir / "bad.clc").read_bytes() == bad


def test_input_is_never_overwritten(workdir, tiny_model_path):
    before = (workdir / "photo.png").read_bytes()
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "-o", "photo.png", "--force")
    assert_one_line_error(r, "overwrite the input")
    assert (workdir / "photo.png").read_bytes() == before


def test_existing_output_needs_force(workdir, tiny_model_path):
    (workdir / "photo.clc").write_bytes(b"keep me")
    r = clc(workdir, tiny_model_path, "encode", "photo.png")
    assert_one_line_error(r, "exists")
    assert (workdir / "photo.clc").read_bytes() == b"keep me"
    assert clc(workdir, tiny_model_path, "encode", "photo.png", "--force").returncode == 0
    assert (workdir / "photo.clc").read_bytes()[:3] == b"CLC"


def test_outputs_get_the_usual_file_mode(workdir, tiny_model_path):
    # atomic writes go through a temporary file (mode 0600); finished files must get 0666 minus the umask like any tool's
    umask = os.umask(0o022)
    os.umask(umask)
    assert clc(workdir, tiny_model_path, "encode", "photo.png").returncode == 0
    assert clc(workdir, tiny_model_path, "decode", "photo.clc", "-o", "out.png").returncode == 0
    for name in ("photo.clc", "out.png"):
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o666 & ~umask, name


def test_unreadable_image_and_missing_file(workdir, tiny_model_path):
    (workdir / "fake.jpg").write_bytes(b"this is text")
    assert_one_line_error(clc(workdir, tiny_model_path, "encode", "fake.jpg"), "not an image")
    assert_one_line_error(clc(workdir, tiny_model_path, "encode", "missing.png"), "no such file")


def test_missing_model_is_one_line(workdir, tiny_model_path):
    r = clc(workdir, tiny_model_path, "encode", "photo.png", "--model", "nope.pt")
    assert_one_line_error(r, "model weights not found")


def test_help_has_examples(workdir, tiny_model_path):
    r = clc(workdir, tiny_model_path, "--help")
    assert r.returncode == 0 and "clc encode photo.png -o photo.clc" in r.stdout.decode()
    r = clc(workdir, tiny_model_path, "encode", "--help")
    assert r.returncode == 0 and "--quality" in r.stdout.decode()


def test_sigint_during_a_batch_leaves_only_complete_files(workdir, tiny_model_path):
    """Ctrl-C in the middle of a batch: exit 130, every file written so far is complete, no temporaries."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from clccodec.format import container

    src = workdir / "many"
    src.mkdir()
    img = Image.fromarray(synthetic_photo(96, 96))
    for i in range(300):
        img.save(src / f"img{i:03d}.png")
    out = workdir / "out"
    env = dict(os.environ, CLC_MODEL=str(tiny_model_path), CLC_DICTIONARY=str(workdir / "none"))
    p = subprocess.Popen([sys.executable, "-m", "clccodec", "encode", *sorted(map(str, src.iterdir())), "-o",
                          str(out)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                         # as from a terminal: a background job's children start with SIGINT ignored
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(list(out.iterdir())) < 3):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err.decode()
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    written = sorted(out.iterdir())
    assert 3 <= len(written) < 300
    assert all(f.suffix == ".clc" and not f.name.startswith(".") for f in written)
    for f in written:
        container.unpack(f.read_bytes())  # complete and valid, or this raises


@pytest.mark.parametrize("when", ["created", "written", "renamed"])
def test_an_interrupt_at_any_step_of_an_atomic_write_leaves_no_temporary(tmp_path, monkeypatch, when):
    """Ctrl-C lands between bytecodes, even right after the call that creates the temporary file returns: the
    destination is absent or complete, and no .part file stays behind (the batch test above hit this race)."""
    from clccodec.io import files as fileio

    real = {"created": os.open, "written": os.chmod, "renamed": os.replace}[when]

    def then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, {"created": "open", "written": "chmod", "renamed": "replace"}[when],
                        then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_atomic(tmp_path / "out.clc", b"payload")
    monkeypatch.undo()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["out.clc"] if when == "renamed" else []), left
    if left:
        assert (tmp_path / "out.clc").read_bytes() == b"payload"
