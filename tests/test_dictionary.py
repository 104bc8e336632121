"""Reference dictionaries: build, .clcdict format, retrieval, and files that need a dictionary to decode.

Everything runs with the tiny random model and small synthetic photos (crop 64), so it stays fast on CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clccodec import Codec
from clccodec.api import read_info
from clccodec.format import clcdict
from clccodec.dictionary.build import BuildOptions, build_dictionary, crop_grid
from clccodec.dictionary.features import query_features, LatentExtractor
from clccodec.dictionary.retrieval import merge_results
from clccodec.dictionary.store import ReferenceDictionary
from clccodec.errors import DictionaryError, DictionaryMismatchError, UsageError
from clccodec.io.images import load_image, pad_to_multiple, to_tensor
from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
from clccodec.model.weights import load_weights, prepare_for_export, save_weights

from .conftest import assert_one_line_error, run_clc, synthetic_photo

CROP = 64


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """6 synthetic photos of 160x224: 2 x 3 non-overlapping 64-crops each = 36 crops."""
    d = tmp_path_factory.mktemp("dict_images")
    for i in range(6):
        Image.fromarray(synthetic_photo(160, 224, seed=i)).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return load_weights(tiny_model_path)


@pytest.fixture(scope="module")
def other_model_path(tmp_path_factory):
    torch.manual_seed(4321)
    model = CLCModel(TINY)
    prepare_for_export(model)
    path = tmp_path_factory.mktemp("models_b") / "other.pt"
    save_weights(model, path)
    return path


def _build(image_dir, model, **kw):
    opts = BuildOptions(**({"clusters": 12, "crop": CROP, "batch": 8} | kw))
    return build_dictionary(image_dir, model, opts)


@pytest.fixture(scope="module")
def dict_a(image_dir, tiny_model, tmp_path_factory):
    d, report = _build(image_dir, tiny_model)
    path = tmp_path_factory.mktemp("dicts") / "a.clcdict"
    d.save(path)
    return path


@pytest.fixture(scope="module")
def dict_b(image_dir, tiny_model, tmp_path_factory):
    d, _ = _build(image_dir, tiny_model, clusters=8, seed=1)
    path = tmp_path_factory.mktemp("dicts_b") / "b.clcdict"
    d.save(path)
    return path


# -- building -------------------------------------------------------------------------------------------------------


def test_crop_grid_is_centred_and_non_overlapping():
    assert crop_grid(160, 224, 64, 64) == [(y, x) for y in (16, 80) for x in (16, 80, 144)]
    assert crop_grid(63, 500, 64, 64) == []
    assert crop_grid(128, 128, 64, 32) == [(y, x) for y in (0, 32, 64) for x in (0, 32, 64)]


def test_build_clusters_and_representatives(image_dir, tiny_model):
    d, report = _build(image_dir, tiny_model)
    assert report.crops == 36 and report.images == 6
    assert 1 <= len(d) <= 12 and report.entries == len(d)
    c, h, w = d.value_shape
    assert (c, h, w) == (TINY.ref_channels, CROP // 16, CROP // 16)
    prov = d.data.provenance
    assert [s["file"] for s in prov["sources"]] == [f"img{i}.png" for i in range(6)]
    assert all(len(s["sha256"]) == 64 for s in prov["sources"])
    entries = prov["entries"]
    assert len(entries) == len(d) and len({tuple(e) for e in entries}) == len(d)  # distinct crops
    # each value is exactly what the model computes for that entry's crop
    src, y, x = entries[0]
    img = load_image(image_dir / prov["sources"][src]["file"]).pixels[y : y + CROP, x : x + CROP]
    from clccodec.model.reference import values_to_int8

    with torch.no_grad():
        expect = values_to_int8(tiny_model.reference_values(to_tensor(img)))[0]
    assert torch.equal(d.values([0])[0], expect)


def test_representatives_fill_empty_clusters():
    from clccodec.dictionary.build import representatives

    keys = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    reps, empty = representatives(keys, 280, seed=0)  # K close to N: k-means leaves clusters empty
    assert empty > 0 and len(reps) == 280 and len(set(reps.tolist())) == 280
    assert np.array_equal(reps, np.sort(reps)) and np.array_equal(reps, representatives(keys, 280, seed=0)[0])


def test_build_is_deterministic(image_dir, tiny_model, dict_a):
    d, _ = _build(image_dir, tiny_model)
    assert d.to_bytes() == dict_a.read_bytes()


def test_build_adapts_k_to_fewer_crops(image_dir, tiny_model):
    d, report = _build(image_dir, tiny_model, clusters=3000)
    assert len(d) == 36
    assert any("only 36 crops for 3000 clusters" in n for n in report.notes)


def test_build_refuses_kodak_and_empty_folders(tmp_path, tiny_model):
    Image.fromarray(synthetic_photo(64, 64)).save(tmp_path / "kodim01.png")
    with pytest.raises(UsageError, match="Kodak"):
        build_dictionary(tmp_path, tiny_model, BuildOptions(crop=64))
    with pytest.raises(UsageError, match="no images"):
        build_dictionary(tmp_path, tiny_model, BuildOptions(crop=64, pattern="img*.png"))
    (tmp_path / "kodim01.png").unlink()
    Image.fromarray(synthetic_photo(40, 40)).save(tmp_path / "small.png")
    with pytest.raises(DictionaryError, match="need at least 2"):
        build_dictionary(tmp_path, tiny_model, BuildOptions(crop=64))


# -- the file format --------------------------------------------------------------------------------------------------


def test_format_round_trip_and_id(dict_a):
    raw = dict_a.read_bytes()
    assert raw[:8] == b"clcdict\0" and raw[8] == clcdict.VERSION
    d = ReferenceDictionary.load(dict_a)
    assert d.to_bytes() == raw and d.size_on_disk == len(raw)
    # the id covers what decoding uses (model id + values), not the provenance
    d.data.provenance["license"] = "changed"
    again = ReferenceDictionary.from_bytes(d.to_bytes())
    assert again.id == d.id and again.to_bytes() != raw
    d.data.values[0, 0, 0, 0] ^= 1
    assert ReferenceDictionary(d.data).id != again.id


@pytest.mark.parametrize("kind", ["truncated", "bitflip", "empty", "foreign", "version", "trailing"])
def test_bad_dictionary_files(tmp_path, dict_a, photo_png, kind, tiny_model_path):
    good = dict_a.read_bytes()
    bad = {"truncated": good[: len(good) // 2], "bitflip": good[:200] + bytes([good[200] ^ 1]) + good[201:],
           "empty": b"", "foreign": photo_png.read_bytes(), "version": good[:8] + b"\x07" + good[9:],
           "trailing": good + b"\0"}[kind]
    needle = {"truncated": "truncated", "bitflip": "checksum mismatch", "empty": "empty", "foreign": "not a .clcdict",
              "version": "version 7 is not supported", "trailing": "unexpected bytes"}[kind]
    path = tmp_path / "bad.clcdict"
    path.write_bytes(bad)
    with pytest.raises(DictionaryError, match=needle):
        ReferenceDictionary.load(path)
    if kind in ("truncated", "foreign"):  # the real CLI, in a fresh process: one line, no traceback, no output
        r = run_clc("encode", str(photo_png), "-o", str(tmp_path / "x.clc"), "--model", str(tiny_model_path),
                    "--dict", str(path))
        assert_one_line_error(r, needle)
        assert not (tmp_path / "x.clc").exists()


def test_missing_dictionary_is_an_error(tmp_path):
    with pytest.raises(DictionaryError, match="reference dictionary .*nope.clcdict: no such file"):
        ReferenceDictionary.load(tmp_path / "nope.clcdict")
    with pytest.raises(DictionaryError, match="is a directory"):
        ReferenceDictionary.load(tmp_path)


# -- retrieval --------------------------------------------------------------------------------------------------------


def _x(path):
    return pad_to_multiple(to_tensor(load_image(path).pixels), 64)


def test_same_image_same_indices(dict_a, tiny_model, photo_png):
    x = _x(photo_png)
    a = ReferenceDictionary.load(dict_a).retrieve(tiny_model, x, 3)
    b = ReferenceDictionary.load(dict_a).retrieve(tiny_model, x.clone(), 3)
    assert a == b and len(a) == 3 and len(set(a)) == 3
    d = ReferenceDictionary.load(dict_a)
    assert d.retrieve(tiny_model, x, 0) == []
    assert sorted(d.retrieve(tiny_model, x, 100)) == list(range(len(d)))  # M > K: every entry once


def test_retrieval_finds_the_crop_itself(dict_a, tiny_model, image_dir):
    """A dictionary entry's own crop, used as the query, retrieves that entry first."""
    d = ReferenceDictionary.load(dict_a)
    prov = d.data.provenance
    for k in (0, len(d) - 1):
        src, y, x = prov["entries"][k]
        crop = load_image(image_dir / prov["sources"][src]["file"]).pixels[y : y + CROP, x : x + CROP]
        assert d.retrieve(tiny_model, to_tensor(crop), 1, rotate=False) == [k]


def test_query_views_and_merge():
    d = [(np.array([[0.5, 0.9], [0.1, 0.7]]), np.array([[4, 2], [2, 3]])),
         (np.array([[0.2, 0.3]]), np.array([[5, 4]]))]
    assert merge_results(d, 3, "distance") == [2, 5, 4]
    assert merge_results(d, 3, "rank") == [2, 5, 4]
    assert merge_results(d, 5, "rank") == [2, 5, 4, 3]
    model = CLCModel(TINY).eval()
    model.model_id = b"\1" * 8
    ext = LatentExtractor(model)
    x = torch.rand(1, 3, 192, 320)
    views = query_features(ext, x, 128, "tiles+global")
    assert len(views) == 2 and views[0].shape == (2 + 1, 2 * TINY.latent_channels * 21)  # 1 x 2 tiles of 128 + the global one


# -- coding with a dictionary -----------------------------------------------------------------------------------------


def test_encode_with_dictionary_decode_in_fresh_process(tmp_path, dict_a, tiny_model_path, photo_png):
    codec = Codec(tiny_model_path, dictionary=dict_a, device="cpu")
    res = codec.encode_full(photo_png, 3.0, 3, reconstruct=True, exact=True, fallback=False)
    info = read_info(res.data)
    d = ReferenceDictionary.load(dict_a)
    assert len(info["references"]) == 3 and info["dictionary_id"] == d.id[:4].hex()
    assert res.data == codec.encode(photo_png, 3.0, 3, fallback=False)  # deterministic
    assert res.data != Codec(tiny_model_path, dictionary=False, device="cpu").encode(photo_png, 3.0, 0)
    (tmp_path / "p.clc").write_bytes(res.data)
    r = run_clc("decode", str(tmp_path / "p.clc"), "-o", str(tmp_path / "p.png"), "--model", str(tiny_model_path),
                "--dict", str(dict_a), "--exact")
    assert r.returncode == 0, r.stderr.decode()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), res.reconstruction)


def test_file_from_dictionary_a_refuses_dictionary_b(tmp_path, dict_a, dict_b, tiny_model_path, photo_png):
    a, b = ReferenceDictionary.load(dict_a), ReferenceDictionary.load(dict_b)
    assert a.id[:4] != b.id[:4]
    data = Codec(tiny_model_path, dictionary=a, device="cpu").encode(photo_png, 3.0, 2, fallback=False)
    with pytest.raises(DictionaryMismatchError, match=a.id[:4].hex()):
        Codec(tiny_model_path, dictionary=b, device="cpu").decode(data)
    (tmp_path / "a.clc").write_bytes(data)
    r = run_clc("decode", str(tmp_path / "a.clc"), "-o", str(tmp_path / "a.png"), "--model", str(tiny_model_path),
                "--dict", str(dict_b))
    assert_one_line_error(r, f"needs reference dictionary {a.id[:4].hex()}")
    assert not (tmp_path / "a.png").exists()
    r = run_clc("decode", str(tmp_path / "a.clc"), "-o", str(tmp_path / "a.png"), "--model", str(tiny_model_path),
                "--dict", "none")
    assert_one_line_error(r, a.id[:4].hex())


def test_values_bound_to_another_model_are_refused(dict_a, other_model_path, tiny_model_path, photo_png, tmp_path):
    d = ReferenceDictionary.load(dict_a)
    with pytest.raises(DictionaryMismatchError, match="was built for model"):
        Codec(other_model_path, dictionary=dict_a, device="cpu")
    with pytest.raises(DictionaryMismatchError, match=d.model_id.hex()):
        d.retrieve(load_weights(other_model_path), _x(photo_png), 3)
    r = run_clc("encode", str(photo_png), "-o", str(tmp_path / "o.clc"), "--model", str(other_model_path),
                "--dict", str(dict_a))
    assert_one_line_error(r, "was built for model")
    # the default dictionary (when it belongs to another model) is simply not used
    codec = Codec(other_model_path, dictionary=None, device="cpu")
    assert codec.dictionary is None or codec.dictionary.model_id[:4] == codec.model_id


# -- the CLI ---------------------------------------------------------------------------------------------------------


def test_build_dict_cli_and_info(tmp_path, image_dir, tiny_model_path):
    from typer.testing import CliRunner

    from clccodec.cli import app

    out = tmp_path / "cli.clcdict"
    args = ["build-dict", str(image_dir), "-o", str(out), "--model", str(tiny_model_path), "--crop", "64",
            "--clusters", "500", "--device", "cpu", "--license", "test images"]
    r = run_clc(*args)  # the real command, in a fresh process
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert "only 36 crops for 500 clusters" in err and "K=36" in err and "Traceback" not in err
    runner = CliRunner()
    r = runner.invoke(app, args)  # refuses to overwrite
    assert r.exit_code != 0 and "exists" in r.output
    r = runner.invoke(app, ["info", str(out), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["K"] == 36 and info["crop"] == 64 and info["feature_extractor"] == "latent"
    assert info["model_id"] == load_weights(tiny_model_path).model_id.hex() and info["bytes"] == out.stat().st_size
    assert info["license"] == "test images" and len(info["sources"]) == 6
    r = runner.invoke(app, ["info", str(out)])  # the table form
    assert r.exit_code == 0 and "K " in r.stdout and "feature_extractor" in r.stdout
    r = runner.invoke(app, ["build-dict", str(tmp_path / "missing"), "-o", str(tmp_path / "m.clcdict"), "--model",
                            str(tiny_model_path)])
    assert r.exit_code != 0 and "no such file or folder" in r.output


# -- the paper's ResNet-50 extractor ---------------------------------------------------------------------------------


def test_resnet50_features_from_a_local_file(tmp_path, image_dir, tiny_model, photo_png, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    d, report = _build(image_dir, tiny_model, features="resnet50", weights=weights)
    assert d.data.extractor == "resnet50" and d.data.mean.shape == (2048 * 21,)
    path = tmp_path / "r50.clcdict"
    d.save(path)
    x = _x(photo_png)
    monkeypatch.delenv("CLC_RESNET50_WEIGHTS", raising=False)
    with pytest.raises(DictionaryError, match="CLC_RESNET50_WEIGHTS"):
        ReferenceDictionary.load(path).retrieve(tiny_model, x, 2)
    idx = ReferenceDictionary.load(path, extractor_weights=weights).retrieve(tiny_model, x, 2)
    monkeypatch.setenv("CLC_RESNET50_WEIGHTS", str(weights))
    assert ReferenceDictionary.load(path).retrieve(tiny_model, x, 2) == idx and len(idx) == 2
    other = tmp_path / "other.pth"
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), other)
    with pytest.raises(DictionaryMismatchError, match="ResNet-50 weights"):
        ReferenceDictionary.load(path, extractor_weights=other).retrieve(tiny_model, x, 2)
    with pytest.raises(UsageError, match="needs --weights"):
        _build(image_dir, tiny_model, features="resnet50")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UsageError, match="cannot read ResNet-50 weights"):
        _build(image_dir, tiny_model, features="resnet50", weights=tmp_path / "junk.pth")


def test_build_default_dict_script(tmp_path, tiny_model_path):
    """scripts/build_default_dict.sh with a tiny model and stand-in photos (the real build needs the final weights)."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    data = tmp_path / "train"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(256, 384, seed=i)).save(data / f"unsplash_{i}.png")
    Image.fromarray(synthetic_photo(256, 384, seed=9)).save(data / "other_source.png")  # not redistributable
    out = tmp_path / "default.clcdict"
    env = dict(os.environ, DATA=str(data), MODEL=str(tiny_model_path), OUT=str(out), PYTHON=sys.executable,
               DEVICE="cpu")
    r = subprocess.run([str(REPO / "scripts" / "build_default_dict.sh"), "--quiet"], env=env, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    d = ReferenceDictionary.load(out)
    prov = d.data.provenance
    assert [s["file"] for s in prov["sources"]] == ["unsplash_0.png", "unsplash_1.png"]
    assert "Unsplash License" in prov["license"] and len(d) == 4  # 2 photos x 2 crops (stride 128)
    assert d.model_id == load_weights(tiny_model_path).model_id
    assert "Unsplash" in r.stdout.decode()  # the info table
    env["MODEL"] = str(tmp_path / "missing.pt")
    r = subprocess.run([str(REPO / "scripts" / "build_default_dict.sh")], env=env, capture_output=True, timeout=60)
    assert r.returncode != 0 and "model weights not found" in r.stderr.decode()


def test_exact_search_stands_in_for_faiss(monkeypatch):
    """Without FAISS installed (the GPU training machine) the NumPy search returns FAISS's neighbours."""
    import sys

    from clccodec.dictionary import retrieval

    rng = np.random.default_rng(0)
    keys, queries = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(7, 16)).astype(np.float32)
    d_faiss, i_faiss = retrieval.flat_index(keys).search(queries, 5)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    index = retrieval.flat_index(keys)
    assert isinstance(index, retrieval.ExactSearch) and index.ntotal == 300
    d, i = index.search(queries, 5)
    assert np.array_equal(i, i_faiss) and np.allclose(d, d_faiss, rtol=1e-4, atol=1e-4)


def test_null_prior_weighs_the_null_token_like_all_references_together():
    from dataclasses import replace

    from clccodec.model.reference import ReferenceAttention

    cfg = replace(TINY, null_prior=True)
    shares = {}
    for prior in (False, True):
        torch.manual_seed(0)
        clm = ReferenceAttention(cfg.feat, cfg.ref_channels, cfg.attn_dim, cfg.ref_out, cfg.align_groups, prior)
        with torch.no_grad():  # references that tell nothing: every logit equal
            clm.query.weight.zero_()
            clm.query.bias.zero_()
            clm.null_value.fill_(1.0)
            clm.value.weight.zero_()
            clm.value.bias.zero_()
        tokens = torch.randn(1, 3 * 256, cfg.ref_channels)  # M = 3 references of 16 x 16 tokens
        with torch.no_grad():
            shares[prior] = float(clm._attend(torch.randn(1, cfg.feat, 4, 4), tokens, 4096).mean())  # null weight
    assert shares[False] < 0.01  # 1 null key against 768 tokens: outvoted
    assert 0.45 < shares[True] < 0.55  # the prior's log2(768): as much weight as all of them


def test_null_prior_model_codes_like_the_plain_one_without_references(tmp_path, image_dir, tiny_model,
                                                                      tiny_model_path, photo_png):
    from dataclasses import replace

    from clccodec.format import container

    net = CLCModel(replace(TINY, null_prior=True))
    net.load_state_dict(tiny_model.state_dict())
    path = tmp_path / "null_prior.pt"
    save_weights(net, path)
    model = load_weights(path)
    assert model.cfg.null_prior and model.model_id != tiny_model.model_id  # the config is part of the id
    d, _ = _build(image_dir, model)
    d.save(tmp_path / "np.clcdict")
    codec = Codec(path, dictionary=tmp_path / "np.clcdict", device="cpu")
    plain = Codec(tiny_model_path, dictionary=False, device="cpu")
    a = codec.encode_full(photo_png, 3.0, 0, reconstruct=True, exact=True)
    b = plain.encode_full(photo_png, 3.0, 0, reconstruct=True, exact=True)
    assert container.unpack(a.data).slices == container.unpack(b.data).slices  # M = 0: the null path is untouched
    assert np.array_equal(a.reconstruction, b.reconstruction)
    res = codec.encode_full(photo_png, 3.0, 3, reconstruct=True, exact=True)
    (tmp_path / "p.clc").write_bytes(res.data)
    r = run_clc("decode", str(tmp_path / "p.clc"), "-o", str(tmp_path / "p.png"), "--model", str(path),
                "--dict", str(tmp_path / "np.clcdict"), "--exact")
    assert r.returncode == 0, r.stderr.decode()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), res.reconstruction)


def test_eval_counts_the_files_that_kept_their_references(dict_a, tiny_model_path, image_dir):
    from clccodec.evaluation.runner import load_images, run_clc as eval_clc

    codec = Codec(tiny_model_path, dictionary=dict_a, device="cpu")
    images = load_images(sorted(image_dir.glob("*.png"))[:2])
    run = eval_clc(codec, images, [2.0, 6.0], 3)
    kept = sum(bool(read_info(codec.encode(im.loaded, q, 3))["references"]) for q in (2.0, 6.0) for im in images)
    assert run.meta["files_with_refs"] == kept and len(run.records) == 4


def test_faiss_kmeans_and_ivf_search():
    """Archive-scale paths: FAISS k-means gives K distinct entries, the same for the same seed; the IVF index finds
    each key itself, as the exact index does."""
    from clccodec.dictionary.build import kmeans_method, representatives
    from clccodec.dictionary.retrieval import RetrievalIndex, ivf_lists

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (40, 16)).astype(np.float32)
    keys = (centres[rng.integers(0, 40, 4000)] + rng.normal(0, 1, (4000, 16))).astype(np.float32)
    a, _ = representatives(keys, 40, seed=3, method="faiss")
    b, _ = representatives(keys, 40, seed=3, method="faiss")
    assert len(set(a.tolist())) == 40 and np.array_equal(a, b)
    assert kmeans_method("auto", 10) == "sklearn" and kmeans_method("auto", 10**6) == "faiss"
    with pytest.raises(UsageError, match="--kmeans"):
        kmeans_method("spectral", 10)
    assert ivf_lists(300_000) == 2048 and ivf_lists(100) == 32
    mean, comps = np.zeros(16, np.float32), np.eye(16, dtype=np.float32)
    exact = RetrievalIndex(mean, comps, keys, exact=True)
    ivf = RetrievalIndex(mean, comps, keys, exact=False)
    assert type(ivf.index).__name__ == "IndexIVFFlat" and type(exact.index).__name__ == "IndexFlatL2"
    probe = keys[::97]
    assert np.array_equal(ivf.search(probe, 1)[1], exact.search(probe, 1)[1])
