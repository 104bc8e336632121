"""Fuzzing the container parser and the decoder with mutated, truncated and spliced .clc files.

Property: decoding any byte string either raises a ClcError (one-line message at the CLI) or returns an image
of the size the header states; never another exception, a crash or a hang, with and without `partial` (the
progressive decoder of truncated version-2 files). Mutations that keep the checksums valid (recomputed after
mutating: the v1 trailing CRC-32, or v2's header and per-section CRCs) reach past the parser into the entropy
decoder and the networks: that is where a careless decoder reads out of bounds or allocates without limit.
Seeds: version-2 files (with metadata, a preview with fewer slices) and the same files as version 1.

CI runs a bounded number of cases; a long run is the same test with more:

    CLC_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py -q
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from clccodec import Codec
from clccodec.format import container
from clccodec.format.alpha import pack_alpha
from clccodec.dictionary.build import BuildOptions, build_dictionary
from clccodec.errors import ClcError
from clccodec.model.weights import load_weights

from .conftest import run_clc, synthetic_photo

EXAMPLES = int(os.environ.get("CLC_FUZZ_EXAMPLES", "60"))
CASE_SECONDS = 60  # a decode of these small files takes well under a second: longer is a hang
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CLC_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def dictionary(tiny_model_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_dict")
    for i in range(2):
        Image.fromarray(synthetic_photo(128, 128, seed=10 + i)).save(d / f"p{i}.png")
    built, _ = build_dictionary(d, load_weights(tiny_model_path), BuildOptions(clusters=6, crop=64, batch=8))
    path = d / "fuzz.clcdict"
    built.save(path)
    return path


@pytest.fixture(scope="module")
def codec(tiny_model_path, dictionary):
    return Codec(tiny_model_path, dictionary=dictionary, device="cpu")


@pytest.fixture(scope="module")
def seeds(codec):
    """Valid files: several sizes and qualities, grayscale, with and without references."""
    files = []
    for (h, w), q, refs, gray in [((48, 64), 1.0, 0, False), ((70, 90), 4.5, 2, False), ((64, 64), 8.0, 3, True),
                                  ((33, 130), 2.25, 1, False)]:
        img = synthetic_photo(h, w, seed=h)
        files.append(codec.encode(img[:, :, 0] if gray else img, quality=q, refs=refs))
    files += [container.pack(container.unpack(d), version=1) for d in files]  # the same files as version 1
    files.append(codec.encode(synthetic_photo(40, 72, seed=3), quality=3, refs=1, slices=1))  # a preview
    f = container.unpack(files[0])
    f.metadata = {"icc": bytes(range(256)) * 2, "exif": b"Exif\0\0MM\0*", "xmp": b"<x:xmpmeta/>"}
    files.append(container.pack(f))
    return files


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    kind = draw(st.sampled_from(["flip", "bytes", "insert", "delete", "truncate", "splice", "header"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "bytes":
        i = draw(st.integers(0, len(data) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16))
        data[i : i + len(chunk)] = chunk
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=32))
    elif kind == "delete":
        i = draw(st.integers(0, len(data) - 1))
        del data[i : i + draw(st.integers(1, 32))]
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "splice":  # the head of one file and the tail of another
        other = draw(st.sampled_from(seeds))
        data = data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))):]
    else:  # header fields: the first 40 bytes hold every field before the strings
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, min(40, len(data) - 1)))
            data[i] = draw(st.integers(0, 255))
    data = bytes(data)
    return container.reseal(data) if draw(st.booleans()) else data


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"decode took more than {CASE_SECONDS} s")


def decode_or_error(codec: Codec, data: bytes, partial: bool = False) -> None:
    """The property: a ClcError, or pixels of the stated size. Anything else propagates and fails the test."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        pixels, gray = codec.decode_pixels(data, partial=partial, detail="sample" if len(data) % 2 else "mean")
    except ClcError as e:
        assert str(e) and "\n" not in str(e)
        event(f"refused: {type(e).__name__}")  # outcome counts: pytest --hypothesis-show-statistics
        return
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    event("decoded to pixels")
    f = container.unpack(data, partial=partial)
    assert pixels.shape == (f.height, f.width, 3) and pixels.dtype == np.uint8


@FUZZ
@given(data=st.data())
def test_mutated_files_decode_or_fail_cleanly(codec, seeds, data):
    decode_or_error(codec, data.draw(mutated(seeds)), partial=data.draw(st.booleans()))


@FUZZ
@given(blob=st.binary(max_size=200), magic=st.booleans())
def test_random_bytes_decode_or_fail_cleanly(codec, blob, magic):
    decode_or_error(codec, container.reseal(b"CLC" + bytes([1 + len(blob) % 2]) + blob) if magic else blob,
                    partial=len(blob) % 3 == 0)


@FUZZ
@given(data=st.data())
def test_structured_header_changes_decode_or_fail_cleanly(codec, seeds, data):
    """Valid containers with fields the decoder must not trust: sizes, quality, references, slice counts."""
    f = container.unpack(data.draw(st.sampled_from(seeds)))
    field = data.draw(st.sampled_from(["size", "quality", "refs", "slices", "strings", "model", "tile", "alpha"]))
    if field == "size":
        f.width = data.draw(st.integers(1, 4 * f.width))
        f.height = data.draw(st.integers(1, 4 * f.height))
    elif field == "quality":
        f.quality = data.draw(st.integers(0, 65535)) / container.QUALITY_SCALE
    elif field == "refs":
        f.ref_indices = data.draw(st.lists(st.integers(0, 1 << 20), max_size=container.MAX_REFS))
        if f.ref_indices and data.draw(st.booleans()):
            f.dictionary_id = codec.dictionary.file_id
    elif field == "slices":
        f.slices = data.draw(st.lists(st.sampled_from(f.slices + [b"", b"\xff" * 8]), min_size=1, max_size=6))
        if f.version == 1 or data.draw(st.booleans()):
            f.slices_total = len(f.slices)  # (else v2 keeps S: fewer strings make a preview file)
    elif field == "strings":  # swap, empty or replace the entropy-coded strings
        parts = [f.hyper, *f.slices]
        i = data.draw(st.integers(0, len(parts) - 1))
        parts[i] = data.draw(st.sampled_from([b"", parts[i][: len(parts[i]) // 2], parts[-1 - i],
                                              data.draw(st.binary(max_size=64))]))
        f.hyper, f.slices = parts[0], parts[1:]
    elif field == "model":
        f.model_id = data.draw(st.binary(min_size=4, max_size=4))
    elif field == "alpha":  # an alpha section for another size, damaged, or of random bytes
        h, w = data.draw(st.integers(1, 2 * f.height)), data.draw(st.integers(1, 2 * f.width))
        plane = pack_alpha(np.full((h, w), data.draw(st.integers(0, 255)), np.uint8))
        f.alpha = data.draw(st.sampled_from([plane, plane[: len(plane) // 2], data.draw(st.binary(max_size=64))]))
        f.version = 2
    else:
        f.tile_size = 64 * data.draw(st.integers(1, 4))  # reserved: refused by the reader
        f.version, f.metadata = 1, {}  # (only the v1 writer writes a tile size; the v2 reader shares the check)
    decode_or_error(codec, container.pack(f, f.version), partial=data.draw(st.booleans()))


def test_oversized_header_is_refused_before_any_work(codec, seeds):
    f = container.unpack(seeds[0])
    f.width = f.height = container.MAX_DIMENSION
    with pytest.raises(ClcError, match="too large"):
        codec.decode_pixels(container.pack(f))


@pytest.mark.parametrize("kind", ["flip", "splice"])
def test_cli_on_fuzzed_files_is_one_line(tmp_path, tiny_model_path, dictionary, seeds, kind):
    """The real command on damaged files: one line on stderr, exit 3, no output file."""
    data = bytearray(seeds[1])
    if kind == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data = seeds[1][:20] + seeds[2][20:]
    (tmp_path / "bad.clc").write_bytes(container.reseal(bytes(data)))
    r = run_clc("decode", "bad.clc", "-o", "out.png", "--dict", str(dictionary), cwd=tmp_path,
                env_extra={"CLC_MODEL": str(tiny_model_path)})
    err = r.stderr.decode()
    if r.returncode == 0:  # a mutation inside an entropy-coded string can still decode to (wrong) pixels
        assert (tmp_path / "out.png").exists()
        return
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert r.returncode in (3, 4)
    assert not (tmp_path / "out.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.clc"]


def test_every_truncation_point_decodes_its_prefix_or_fails_cleanly(codec, seeds):
    """The issue's bar: every truncation of a v2 file, with partial=True, decodes exactly its complete prefix
    (the same pixels as the file cut at that prefix's end) or gives a clean error; without partial, an error."""
    data = seeds[1]  # references, two slices
    info = container.read_info(data)
    ends = [info["hyper_end"], *info["slice_ends"]]
    prefix = {k: codec.decode_pixels(data[:e], partial=True)[0] for k, e in enumerate(ends)}
    for n in range(1, len(data) + 1):
        if n < len(data):
            with pytest.raises(ClcError, match="truncated"):
                codec.decode_pixels(data[:n])
        if n < ends[0]:
            with pytest.raises(ClcError):
                codec.decode_pixels(data[:n], partial=True)
            continue
        k = sum(e <= n for e in ends[1:])
        r = codec.decode_full(data[:n], partial=True) if n in ends or n % 9 == 0 else None  # (a decode is ~50 ms)
        assert container.unpack(data[:n], partial=True).slices_present == k
        if r is not None:
            assert r.slices_used == k and r.truncated == (n < len(data))
            assert np.array_equal(r.pixels, prefix[k])
