import struct
import zlib

import pytest

from clccodec.format import container
from clccodec.format.container import ClcFile, pack, unpack
from clccodec.errors import (
    ChecksumError,
    FormatError,
    NotAClcFileError,
    TruncatedError,
    UnsupportedVersionError,
)


def sample(refs=(5, 300, 2999)) -> ClcFile:
    return ClcFile(width=768, height=512, model_id=b"\x01\x02\x03\x04", quality=3.25, grayscale=True,
                   dictionary_id=b"\xaa\xbb\xcc\xdd" if refs else b"\0" * 4, ref_indices=list(refs),
                   hyper=b"hyperlatent-", slices=[b"slice1..", b"\0" * 8, b"slice3.." * 50])


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def version(request) -> int:
    return request.param


def test_round_trip_every_field(version):
    f = sample()
    f.version = version
    g = unpack(pack(f, version))
    assert g == f


def test_round_trip_without_references_omits_dictionary_id(version):
    with_refs, without = pack(sample(), version), pack(sample(refs=()), version)
    assert unpack(without).num_refs == 0
    # dictionary id (4) + three varint indices (1 + 2 + 2)
    assert len(with_refs) - len(without) == 4 + 1 + 2 + 2


def test_v1_layout_is_the_documented_one():
    data = pack(sample(refs=()), version=1)
    assert data[:3] == b"CLC" and data[3] == 1
    assert data[4] == container.FLAG_GRAYSCALE
    assert data[5:7] == bytes([0x80, 0x06])  # varint 768
    assert data[7:9] == bytes([0x80, 0x04])  # varint 512
    assert data[9:13] == b"\x01\x02\x03\x04"
    assert struct.unpack(">H", data[13:15])[0] == 3.25 * 256
    assert data[15] == 0  # M
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_quality_is_stored_on_a_256th_grid():
    assert container.quantize_quality(3.3) == round(3.3 * 256) / 256


def test_empty_and_foreign_inputs():
    with pytest.raises(NotAClcFileError, match="empty"):
        unpack(b"")
    with pytest.raises(NotAClcFileError, match="not a .clc file"):
        unpack(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)


def test_every_truncation_is_a_format_error(version):
    data = pack(sample(), version)
    for n in range(1, len(data)):
        with pytest.raises(FormatError):
            unpack(data[:n])


def test_truncated_payload_says_truncated(version):
    data = pack(sample(), version)
    with pytest.raises(TruncatedError, match="truncated"):
        unpack(data[:-10])


def test_every_single_bit_flip_is_detected(version):
    data = bytearray(pack(sample(), version))
    for i in range(len(data)):
        for bit in (0, 3, 7):
            d = bytearray(data)
            d[i] ^= 1 << bit
            with pytest.raises(FormatError):
                unpack(bytes(d))


def test_payload_corruption_is_a_checksum_error(version):
    data = bytearray(pack(sample(), version))
    data[-20] ^= 0x10
    with pytest.raises(ChecksumError):
        unpack(bytes(data))


def test_unknown_version(version):
    data = bytearray(pack(sample(), version))
    data[3] = 9
    with pytest.raises(UnsupportedVersionError, match="version 9"):
        unpack(bytes(data))


def test_trailing_garbage_is_refused(version):
    with pytest.raises(FormatError, match="unexpected bytes"):
        unpack(pack(sample(), version) + b"junk")
    with pytest.raises(FormatError, match="unexpected bytes"):  # with partial too: longer is never truncated
        unpack(pack(sample(), version) + b"junk", partial=True)



# -- version 2 ------------------------------------------------------------------------------------------------


def test_v2_is_written_by_default_and_documented_layout():
    f = sample(refs=())
    data = pack(f)
    assert data[:4] == b"CLC\x02" and container.VERSION == 2
    assert data[4] == container.FLAG_GRAYSCALE
    assert data[5:9] == bytes([0x80, 0x06, 0x80, 0x04])
    assert data[9:13] == b"\x01\x02\x03\x04" and struct.unpack(">H", data[13:15])[0] == 3.25 * 256
    assert data[15] == 0 and data[16] == 0  # M = 0, tile size 0
    assert list(data[17:20]) == [3, 3, 0]  # S, K, no metadata
    lengths = [12, 8, 8, 400]
    assert list(data[20:23]) == lengths[:3] and data[23:25] == bytes([0x90, 0x03])  # varint 400
    header_crc = zlib.crc32(data[:25])
    assert struct.unpack(">I", data[25:29])[0] == header_crc
    pos = 29
    for i, s in enumerate([f.hyper, *f.slices]):  # strings in decoding order, each + CRC
        assert data[pos : pos + len(s)] == s
        crc = zlib.crc32(struct.pack(">IB", header_crc, i) + s)
        assert struct.unpack(">I", data[pos + len(s) : pos + len(s) + 4])[0] == crc
        pos += len(s) + 4
    assert pos == len(data)
    info = container.read_info(data)
    assert info["hyper_end"] == 29 + 12 + 4 and info["slice_ends"] == [57, 69, len(data)]


def test_v2_overhead_is_four_bytes_per_string_more_than_v1():
    assert len(pack(sample())) - len(pack(sample(), version=1)) == 2 + 4 * 4  # K and N bytes, a CRC per string


def test_metadata_round_trip_and_order():
    f = sample()
    f.metadata = {"xmp": b"<x/>", "icc": b"I" * 300, "exif": b"Exif\0\0MM"}
    data = pack(f)
    g = unpack(data)
    assert g.metadata == f.metadata
    assert data.index(b"I" * 300) < data.index(b"Exif") < data.index(b"<x/>") < data.index(b"hyperlatent-")
    assert container.read_info(data)["metadata"] == {"icc": 300, "exif": 8, "xmp": 4}
    with pytest.raises(ValueError):
        pack(f, version=1)  # v1 has no place for it


def test_preview_file_holds_k_of_s_slices():
    f = sample()
    f.slices = f.slices[:1]
    f.slices_total = 3
    g = unpack(pack(f))
    assert g.slices_total == 3 and g.slices_present == 1 and not g.truncated
    assert container.read_info(pack(f))["slices_present"] == 1


def test_partial_unpack_at_every_truncation_point():
    """A v2 file cut anywhere: an error before the hyper-latent is complete, else exactly the complete slices."""
    f = sample()
    f.metadata = {"icc": b"P" * 40}
    data = pack(f)
    info = container.read_info(data)
    for n in range(1, len(data)):
        with pytest.raises(TruncatedError):
            unpack(data[:n])  # without partial: always an error
        if n < info["hyper_end"]:
            with pytest.raises(FormatError):
                unpack(data[:n], partial=True)
            continue
        g = unpack(data[:n], partial=True)
        k = sum(e <= n for e in info["slice_ends"])
        assert g.truncated and g.slices_present == k and g.slices_total == 3
        assert g.slices == f.slices[:k] and g.metadata == f.metadata


def test_partial_does_not_excuse_corruption():
    data = bytearray(pack(sample()))
    end = container.read_info(bytes(data))["slice_ends"][0]
    data[end - 6] ^= 1  # inside slice 1
    with pytest.raises(ChecksumError, match="slice 1"):
        unpack(bytes(data[: end + 3]), partial=True)


def test_v1_truncation_is_an_error_even_with_partial():
    data = pack(sample(), version=1)
    with pytest.raises(TruncatedError, match="version 2"):
        unpack(data[:-10], partial=True)


def test_swapped_equal_length_strings_are_detected():
    f = sample()
    f.slices[0], f.slices[1] = b"A" * 8, b"B" * 8
    data = bytearray(pack(f))
    i, j = data.index(b"A" * 8), data.index(b"B" * 8)
    data[i : i + 8], data[j : j + 8] = b"B" * 8, b"A" * 8
    with pytest.raises(ChecksumError):
        unpack(bytes(data))
