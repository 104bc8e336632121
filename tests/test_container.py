import struct
import zlib

import pytest

from clccodec import container
from clccodec.container import ClcFile, TileStreams, pack, unpack
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
                   tiles=[TileStreams(b"hyperlatent-", [b"slice1..", b"\0" * 8, b"slice3.." * 50])])


def test_round_trip_every_field():
    f = sample()
    g = unpack(pack(f))
    assert g == f


def test_round_trip_without_references_omits_dictionary_id():
    with_refs, without = pack(sample()), pack(sample(refs=()))
    assert unpack(without).num_refs == 0
    # dictionary id (4) + three varint indices (1 + 2 + 2)
    assert len(with_refs) - len(without) == 4 + 1 + 2 + 2


def test_layout_is_the_documented_one():
    data = pack(sample(refs=()))
    assert data[:3] == b"CLC" and data[3] == container.VERSION
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


def test_every_truncation_is_a_format_error():
    data = pack(sample())
    for n in range(1, len(data)):
        with pytest.raises(FormatError):
            unpack(data[:n])


def test_truncated_payload_says_truncated():
    data = pack(sample())
    with pytest.raises(TruncatedError, match="truncated"):
        unpack(data[:-10])


def test_every_single_bit_flip_is_detected():
    data = bytearray(pack(sample()))
    for i in range(len(data)):
        for bit in (0, 3, 7):
            d = bytearray(data)
            d[i] ^= 1 << bit
            with pytest.raises(FormatError):
                unpack(bytes(d))


def test_payload_corruption_is_a_checksum_error():
    data = bytearray(pack(sample()))
    data[-20] ^= 0x10
    with pytest.raises(ChecksumError):
        unpack(bytes(data))


def test_unknown_version():
    data = bytearray(pack(sample()))
    data[3] = 9
    with pytest.raises(UnsupportedVersionError, match="version 9"):
        unpack(bytes(data))


def test_trailing_garbage_is_refused():
    with pytest.raises(FormatError, match="unexpected bytes"):
        unpack(pack(sample()) + b"junk")
