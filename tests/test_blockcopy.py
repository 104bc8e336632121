"""Block copy (blockcopy.py): the copy section's bytes, its integer low-pass, the search, dictionaries with
pictures, and whole files whose blocks are copied from a dictionary picture or add its detail, decoded alike by
both decoders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clccodec import Codec
from clccodec.encoding import blockcopy
from clccodec.format import container, copysection
from clccodec.dictionary import pictures
from clccodec.format.container import ClcFile
from clccodec.format import clcdict
from clccodec.dictionary.build import BuildOptions, build_dictionary
from clccodec.dictionary.store import ReferenceDictionary
from clccodec.encoding.effort import rd_cost
from clccodec.errors import DictionaryError, FormatError, ReferenceIndexError
from clccodec.decoding.decoder import LiteDecoder
from clccodec.model.weights import load_weights

from .conftest import run_clc, synthetic_photo


def random_copy(seed: int, nh: int = 5, nw: int = 7, pictures: int = 3) -> BlockCopy:
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, 2 * pictures + 1, (nh, nw)).astype(np.uint8)  # copy and detail blocks
    src_y = rng.integers(0, 200, (nh, nw))
    src_x = rng.integers(0, 300, (nh, nw))
    return copysection.BlockCopy(16, [4, 0, 9][:pictures], modes, src_y, src_x)


BlockCopy = copysection.BlockCopy


def same_copies(a: BlockCopy, b: BlockCopy) -> bool:
    sel = a.modes > 0
    return (a.block == b.block and a.pictures == b.pictures and np.array_equal(a.modes, b.modes)
            and np.array_equal(a.src_y[sel], b.src_y[sel]) and np.array_equal(a.src_x[sel], b.src_x[sel]))


@pytest.mark.parametrize("seed", range(4))
def test_section_round_trip(seed):
    bc = random_copy(seed)
    back = copysection.unpack(copysection.pack(bc), 7 * 16 + 5, 5 * 16 + 9)  # partial edge blocks are not in the grid
    assert same_copies(bc, back)


def test_predicted_displacements_cost_almost_nothing():
    nh, nw = 20, 30
    modes = np.ones((nh, nw), dtype=np.uint8)
    disp = (37, -21)  # one displacement everywhere: every block but the first is predicted exactly
    bc = BlockCopy(16, [0], modes, np.arange(nh)[:, None] * 16 + disp[0] + np.zeros((nh, nw), int),
                   np.arange(nw)[None, :] * 16 + disp[1] + np.zeros((nh, nw), int))
    data = copysection.pack(bc)
    assert len(data) < 40
    assert same_copies(bc, copysection.unpack(data, nw * 16, nh * 16))


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d[:1], "truncated"),
    (lambda d: bytes([3]) + d[1:], "block size 3"),
    (lambda d: d[:1] + bytes([0]) + d[2:], "0 pictures"),
    (lambda d: d[:5] + b"not zlib", "does not decompress"),
    (lambda d: d + b"\0", "does not decompress"),
])
def test_corrupt_sections_are_format_errors(mutate, needle):
    data = copysection.pack(random_copy(1))
    with pytest.raises(FormatError, match=needle):
        copysection.unpack(mutate(data), 7 * 16, 5 * 16)


def test_a_mode_beyond_the_listed_pictures_is_refused():
    bc = random_copy(2, pictures=1)
    bc.modes[0, 0] = 3  # 1: copy, 2: detail of the one picture
    with pytest.raises(FormatError, match="block mode 3 with 1 listed pictures"):
        copysection.unpack(copysection.pack(bc), 7 * 16, 5 * 16)


def test_lowpass_is_the_integer_double_box_mean():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (40, 57, 3)).astype(np.uint8)
    low = copysection.lowpass(a, 2)
    # the same filter in floating point: 5 x 5 box means twice, edges replicated
    ref = a.astype(np.float64)
    for _ in range(2):
        p = np.pad(ref, ((2, 2), (2, 2), (0, 0)), mode="edge")
        ref = sum(p[dy:dy + 40, dx:dx + 57] for dy in range(5) for dx in range(5)) / 25
    assert low.dtype == np.int64 and np.abs(low - ref).max() <= 0.5
    assert np.array_equal(low, np.floor(ref + 0.5).astype(np.int64)) or np.abs(low - ref).max() == 0.5
    flat = np.full((20, 30, 3), 77, np.uint8)
    assert not copysection.detail(flat).any()
    d = copysection.detail(a)
    assert d.dtype == np.int16 and np.array_equal(d, a.astype(np.int64) - copysection.lowpass(a))


def test_paste_copies_exact_pixels_and_checks_bounds():
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    decoded = np.zeros((32, 48, 3), dtype=np.uint8)
    modes = np.array([[1, 0, 0], [0, 0, 1]], dtype=np.uint8)
    src_y = np.array([[5, 0, 0], [0, 0, 84]])
    src_x = np.array([[7, 0, 0], [0, 0, 104]])
    out = copysection.paste(decoded, BlockCopy(16, [0], modes, src_y, src_x), [pic])
    assert np.array_equal(out[:16, :16], pic[5:21, 7:23])
    assert np.array_equal(out[16:, 32:], pic[84:100, 104:120])
    assert not out[:16, 16:].any() and not decoded.any()
    src_x[1, 2] = 105  # one pixel past the right edge
    with pytest.raises(FormatError, match="outside its picture"):
        copysection.paste(decoded, BlockCopy(16, [0], modes, src_y, src_x), [pic])
    modes[1, 2] = 2  # the detail of the same picture: checked alike
    with pytest.raises(FormatError, match="outside its picture"):
        copysection.paste(decoded, BlockCopy(16, [0], modes, src_y, src_x), [pic])
    with pytest.raises(ReferenceIndexError, match="copy from picture 3"):
        copysection.check_indices(BlockCopy(16, [3], modes, src_y, src_x), 3)


def test_detail_blocks_add_the_pictures_detail_clipped():
    rng = np.random.default_rng(1)
    pics = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(2)]
    decoded = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    modes = np.array([[3, 0, 1], [4, 2, 0]], dtype=np.uint8)  # 1, 2: copy; 3, 4: detail of picture 1, 2
    src_y = np.array([[3, 0, 10], [40, 7, 0]])
    src_x = np.array([[9, 0, 20], [60, 33, 0]])
    bc = BlockCopy(16, [5, 8], modes, src_y, src_x)
    assert bc.copied == 2 and bc.detailed == 2
    out = copysection.paste(decoded, bc, pics)
    for (i, j), k, y, x in (((0, 0), 0, 3, 9), ((1, 0), 1, 40, 60)):
        want = decoded[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16].astype(int) + copysection.detail(pics[k])[
            y:y + 16, x:x + 16]
        assert np.array_equal(out[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16], np.clip(want, 0, 255))
        assert (want < 0).any() or (want > 255).any()  # the clipping was exercised
    assert np.array_equal(out[:16, 32:], pics[0][10:26, 20:36])
    assert np.array_equal(out[16:, 16:32], pics[1][7:23, 33:49])
    assert np.array_equal(out[:16, 16:32], decoded[:16, 16:32])
    back = copysection.unpack(copysection.pack(bc), 48, 32)
    assert same_copies(bc, back)


def test_quarter_pixel_sampling_interpolates_in_integers():
    ramp = np.broadcast_to((4 * np.arange(60))[None, :, None], (40, 60, 3)).astype(np.uint8)
    for fx in range(4):  # the filters reproduce a ramp exactly between its samples
        got = copysection.sample(ramp, 4 * 10, 4 * 20 + fx, 16, True)
        assert np.array_equal(got[0, :, 0], 4 * np.arange(20, 36) + fx)
    rng = np.random.default_rng(3)
    pic = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    assert np.array_equal(copysection.sample(pic, 4 * 5, 4 * 7, 16, True), pic[5:21, 7:23])
    assert np.array_equal(copysection.sample(pic, 5, 7, 16, False), pic[5:21, 7:23])
    det = copysection.detail(pic)
    for fy in range(4):  # the encoder's whole-image phases are the decoder's per-block samples, edges included
        for fx in range(4):
            ph = blockcopy._phase_image(det, fy, fx)
            for y, x in ((0, 0), (32, 48), (13, 29)):
                assert np.array_equal(ph[y:y + 16, x:x + 16], copysection.sample(det, 4 * y + fy, 4 * x + fx, 16, True))
    bc = BlockCopy(16, [0], np.array([[1, 2]], np.uint8), np.array([[4 * 32 + 3, 0]]), np.array([[4 * 48 + 1, 5]]),
                   quarter=True)
    back = copysection.unpack(copysection.pack(bc), 32, 16)
    assert back.quarter and same_copies(bc, back)
    copysection.check_inside(bc, [pic.shape[:2]])  # (32.75, 48.25): the last whole-pixel position is inside
    bc.src_y[0, 0] = 4 * 33
    with pytest.raises(FormatError, match="outside its picture"):
        copysection.check_inside(bc, [pic.shape[:2]])
    with pytest.raises(FormatError, match="block size 3"):
        copysection.unpack(bytes([0x80 | 3]) + copysection.pack(bc)[1:], 32, 16)


def test_quarter_refinement_finds_a_half_pixel_shift():
    pic = synthetic_photo(160, 200, seed=3)
    det = copysection.detail(pic)
    view = blockcopy._phase_image(det, 2, 1)[30:30 + 96, 50:50 + 128]  # the detail at (30.5, 50.25) on
    m = blockcopy.find_matches(blockcopy.to_unit(view), [blockcopy.to_unit(det)], [0])
    q = blockcopy.refine_quarter(m, view, [det])
    inner = (slice(1, -1), slice(1, -1))
    assert q.quarter and (q.mse <= m.mse).all() and q.mse[inner].max() == 0
    assert (q.src_y - 64 * np.arange(6)[:, None] == 4 * 30 + 2)[inner].all()
    assert (q.src_x - 64 * np.arange(8)[None] == 4 * 50 + 1)[inner].all()


def test_search_finds_a_shifted_crop_exactly():
    import torch

    pic = synthetic_photo(160, 200, seed=3)
    img = pic[37:37 + 96, 53:53 + 128]  # off the 16- and the 4-pixel grids
    other = synthetic_photo(160, 200, seed=5)
    m = blockcopy.find_matches(blockcopy.to_unit(img), [blockcopy.to_unit(other), blockcopy.to_unit(pic)], [7, 2])
    assert m.mse.shape == (6, 8) and m.pictures == [7, 2]
    assert (m.which == 1).all() and m.mse.max() < 1e-5  # (float32 SSD by expansion: exact up to rounding)
    assert (m.src_y - np.arange(6)[:, None] * 16 == 37).all() and (m.src_x - np.arange(8)[None] * 16 == 53).all()
    thumbs = [blockcopy.thumbnail(blockcopy.to_unit(p)) for p in (other, pic)]
    assert blockcopy.rank_pictures(blockcopy.to_unit(img), thumbs) == [1, 0]
    assert blockcopy.rank_pictures(blockcopy.to_unit(img), [None, *thumbs]) == [2, 1, 0]  # None: never searched
    pics = pictures.Pictures([pictures.encode_picture(p) for p in (other, pic)])
    cached = pics.thumbnails()
    assert pics.thumbnails() is cached and all(torch.equal(a, b) for a, b in zip(cached, thumbs))
    assert not pics._pixels  # ranking keeps only the thumbnails, not the decoded pictures
    assert torch.is_tensor(blockcopy.to_unit(img))


def test_container_carries_the_copy_section():
    streams = dict(hyper=b"\1" * 8, slices=[b"\2" * 8, b"\3" * 12])
    section = copysection.pack(random_copy(3))
    f = ClcFile(112, 80, b"abcd", 2.0, dictionary_id=b"dict", ref_indices=[5], **streams,
                metadata={"exif": b"Exif\0\0x"}, block_copy=section)
    back = container.unpack(container.pack(f))
    assert back.block_copy == section and back.metadata == {"exif": b"Exif\0\0x"}
    assert container.read_info(container.pack(f))["copy_bytes"] == len(section)
    plain = ClcFile(112, 80, b"abcd", 2.0, dictionary_id=b"dict", ref_indices=[5], **streams)
    assert container.unpack(container.pack(plain)).block_copy == b""
    with pytest.raises(ValueError, match="needs references"):
        container.pack(ClcFile(112, 80, b"abcd", 2.0, **streams, block_copy=section))
    with pytest.raises(ValueError, match="version 1"):
        container.pack(f, version=1)


# -- dictionaries with pictures and whole files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Three synthetic 'views': the test image is a shifted crop of the first."""
    root = tmp_path_factory.mktemp("collection")
    side = root / "side"
    side.mkdir()
    views = [synthetic_photo(192, 256, seed=s) for s in (1, 2, 4)]
    for i, v in enumerate(views):
        Image.fromarray(v).save(side / f"view{i}.png")
    test = views[0][21:21 + 128, 45:45 + 176]
    return side, views, test


@pytest.fixture(scope="module")
def picture_dict(collection, tiny_model_path):
    model = load_weights(tiny_model_path, "cpu")
    d, _ = build_dictionary(collection[0], model, BuildOptions(crop=64, clusters=8, pictures=True))
    return d


def test_dictionary_stores_its_pictures_exactly(collection, picture_dict, tiny_model_path, tmp_path):
    _, views, _ = collection
    assert len(picture_dict.pictures) == 3
    assert all(np.array_equal(picture_dict.pictures.pixels(i), v) for i, v in enumerate(views))
    path = tmp_path / "p.clcdict"
    picture_dict.save(path)
    back = ReferenceDictionary.load(path)
    assert back.id == picture_dict.id and np.array_equal(back.pictures.pixels(2), views[2])
    # the id covers the pictures; a dictionary without them keeps the id it always had
    data = picture_dict.data
    assert clcdict.dictionary_id(data.model_id, data.values, data.pictures) != clcdict.dictionary_id(
        data.model_id, data.values)
    assert clcdict.info(path.read_bytes())["pictures"] == 3


def test_corrupt_picture_tables_are_dictionary_errors(picture_dict):
    import hashlib

    blob = picture_dict.to_bytes()
    with pytest.raises(DictionaryError, match="truncated|checksum"):
        clcdict.unpack(blob[:-100])
    body = blob[:-32] + b"extra"  # bytes after the pictures, resealed with a valid checksum
    with pytest.raises(DictionaryError, match="unexpected bytes after the pictures"):
        clcdict.unpack(body + hashlib.sha256(body).digest())
    with pytest.raises(DictionaryError, match="does not decode"):
        pictures.decode_picture(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)


def test_files_copy_blocks_and_both_decoders_agree(collection, picture_dict, tiny_model_path, tmp_path):
    _, views, test = collection
    codec = Codec(tiny_model_path, picture_dict, device="cpu")
    with_refs = codec.encode_full(test, 3.0, refs=1, reconstruct=True)
    without = codec.encode_full(test, 3.0, refs=0, reconstruct=True)
    f = container.unpack(with_refs.data)
    assert f.block_copy, "an exact match in a picture must be copied"
    bc = copysection.unpack(f.block_copy, f.width, f.height)
    assert bc.pictures == [0] and bc.copied > 0
    # the encoder keeps copies only when they lower the real cost
    assert rd_cost(test, with_refs.reconstruction, len(with_refs.data), 3.0) < rd_cost(test, without.reconstruction,
                                                                              len(without.data), 3.0)
    pixels, _ = codec.decode_pixels(with_refs.data)
    assert np.array_equal(pixels, with_refs.reconstruction)
    exact = 0
    assert bc.quarter  # the encoder writes quarter-pixel positions
    for i, j in zip(*np.nonzero(bc.modes == 1)):  # copied blocks are the picture's pixels at their source
        y, x = int(bc.src_y[i, j]), int(bc.src_x[i, j])
        assert np.array_equal(pixels[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16],
                              np.clip(copysection.sample(views[0], y, x, 16, True), 0, 255))
        exact += (y - 64 * i, x - 64 * j) == (4 * 21, 4 * 45)  # the true displacement: the source's exact pixels
    assert exact > bc.copied // 2
    path = tmp_path / "p.clcdict"
    picture_dict.save(path)
    lite_pixels, _ = LiteDecoder(tiny_model_path, path).decode_pixels(with_refs.data)
    assert np.array_equal(lite_pixels, pixels)


def test_a_brighter_view_takes_the_pictures_detail(collection, shipped_codec, tmp_path):
    """A view 40 levels brighter than its picture, shifted by a fraction of a pixel (shipped weights: the
    untrained tiny model's pixels are worse than any copy): copies would cost PSNR, but the picture's detail
    serves; the file is cheaper than without, and both decoders give the encoder's pixels."""
    side, views, _ = collection
    d, _ = build_dictionary(side, shipped_codec.model, BuildOptions(crop=64, clusters=8, pictures=True))
    shifted = blockcopy._phase_image(views[0], 2, 1)  # the picture at (y + 1/2, x + 1/4)
    test = np.clip(shifted[40:40 + 128, 30:30 + 160] + 40, 0, 255).astype(np.uint8)
    codec = Codec(shipped_codec.model, d, device="cpu")
    with_refs = codec.encode_full(test, 2.0, refs=1, reconstruct=True)
    without = codec.encode_full(test, 2.0, refs=0, reconstruct=True)
    f = container.unpack(with_refs.data)
    bc = copysection.unpack(f.block_copy, f.width, f.height)
    assert bc.pictures == [0] and bc.detailed > 40 and bc.copied == 0 and bc.quarter
    used = bc.modes > 0
    assert ((bc.src_y[used] % 4 == 2) & (bc.src_x[used] % 4 == 1)).mean() > 0.5  # found at its quarter pixels
    assert rd_cost(test, with_refs.reconstruction, len(with_refs.data), 2.0) < rd_cost(test, without.reconstruction,
                                                                                len(without.data), 2.0)
    assert np.array_equal(codec.decode_pixels(with_refs.data)[0], with_refs.reconstruction)
    path = tmp_path / "p.clcdict"
    d.save(path)  # the exact synthesis: the same pixels from both decoders and with 1 or 2 threads
    exact = codec.decode_pixels(with_refs.data, exact=True)[0]
    assert np.array_equal(LiteDecoder(None, path).decode_pixels(with_refs.data, exact=True)[0], exact)
    (tmp_path / "v.clc").write_bytes(with_refs.data)
    for threads in ("1", "2"):
        out = tmp_path / f"v{threads}.png"
        r = run_clc("decode", str(tmp_path / "v.clc"), "-o", str(out), "--dict", str(path), "--exact",
                    env_extra={"OMP_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr.decode()
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), exact)


def test_no_copies_without_pictures_or_references(collection, tiny_model_path, picture_dict):
    _, _, test = collection
    codec = Codec(tiny_model_path, picture_dict, device="cpu")
    assert not container.unpack(codec.encode(test, 3.0, refs=0)).block_copy
    assert not container.unpack(codec.encode(test, 3.0, refs=1, slices=1)).block_copy  # previews never copy
    plain = ReferenceDictionary(clcdict.DictData(**{**picture_dict.data.__dict__, "pictures": []}))
    assert not container.unpack(Codec(tiny_model_path, plain, device="cpu").encode(test, 3.0, refs=1)).block_copy


def test_mutated_sections_raise_only_format_errors():
    """Any byte string as a copy section: a parsed BlockCopy or a FormatError, never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    seed = copysection.pack(random_copy(5))

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.integers(0, len(seed) - 1), st.integers(0, 255), st.integers(0, len(seed)))
    def check(pos, value, cut):
        data = bytearray(seed)
        data[pos] = value
        for d in (bytes(data), bytes(data[:cut])):
            try:
                bc = copysection.unpack(d, 7 * 16, 5 * 16)
            except FormatError:
                continue
            assert bc.modes.shape == (5, 7) and bc.modes.max() <= 2 * len(bc.pictures)

    check()


def test_cli_builds_a_picture_dictionary_and_codes_with_it(collection, tiny_model_path, tmp_path):
    side, _, test = collection
    dict_path, src = tmp_path / "views.clcdict", tmp_path / "shot.png"
    Image.fromarray(test).save(src)
    r = run_clc("build-dict", str(side), "-o", str(dict_path), "--pictures", "--crop", "64", "-k", "8",
                "--model", str(tiny_model_path))
    assert r.returncode == 0, r.stderr.decode()
    assert "3 pictures" in r.stderr.decode()
    common = ["--model", str(tiny_model_path), "--dict", str(dict_path)]
    r = run_clc("encode", str(src), "-o", str(tmp_path / "shot.clc"), "-q", "3", "--refs", "1", *common)
    assert r.returncode == 0, r.stderr.decode()
    data = (tmp_path / "shot.clc").read_bytes()
    assert container.read_info(data)["copy_bytes"] > 0
    r = run_clc("decode", str(tmp_path / "shot.clc"), "-o", str(tmp_path / "back.png"), *common)
    assert r.returncode == 0, r.stderr.decode()
    expected, _ = Codec(tiny_model_path, str(dict_path), device="cpu").decode_pixels(data)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png").convert("RGB")), expected)
    # the dictionary is needed: without it the file is refused in one line
    r = run_clc("decode", str(tmp_path / "shot.clc"), "-o", str(tmp_path / "x.png"), "--model", str(tiny_model_path))
    assert r.returncode != 0 and "dictionary" in r.stderr.decode()
