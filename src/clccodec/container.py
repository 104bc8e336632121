"""The .clc container, version 1 (byte-level specification: docs/format.md).

    magic "CLC" | version | flags | width, height (varint) | model id (4) | quality (u16, x256)
    | M (u8) | [dictionary id (4) | M reference indices (varint)]  (only when M > 0)
    | tile size (varint, 0 = one tile; other values are reserved) | slice count S (u8)
    | S + 1 string lengths (varint: hyper string, then each slice string)
    | all strings | CRC-32 of everything before it (u32)

Every field is checked on read; anything wrong raises a typed FormatError subclass, never a crash.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .errors import ChecksumError, FormatError, NotAClcFileError, TruncatedError, UnsupportedVersionError
from .ids import FILE_ID_BYTES, NO_DICTIONARY
from .quality import QUALITY_SCALE, quantize_quality  # noqa: F401 - the grid qualities are stored on

MAGIC = b"CLC"
VERSION = 1
MAX_DIMENSION = 1 << 20
MAX_REFS = 64  # references a file can name
DEFAULT_REFS = 3  # references an encoder retrieves unless told otherwise (the paper's M = 3)
FLAG_GRAYSCALE = 0x01
KNOWN_FLAGS = FLAG_GRAYSCALE
# rANS output (CompressAI's coder) is whole 32-bit words and ends with the coder's 64-bit final state
RANS_WORD, RANS_MIN_BYTES = 4, 8


@dataclass
class TileStreams:
    """The entropy-coded strings of an image (or of one tile): the hyper-latent, then one per latent slice.

    What CLCModel.compress returns and CLCModel.decompress takes; a ClcFile holds one per tile.
    """

    hyper: bytes
    slices: list[bytes]


@dataclass
class ClcFile:
    width: int
    height: int
    model_id: bytes
    quality: float
    grayscale: bool = False
    dictionary_id: bytes = NO_DICTIONARY
    ref_indices: list[int] = field(default_factory=list)
    tile_size: int = 0
    tiles: list[TileStreams] = field(default_factory=list)

    @property
    def num_refs(self) -> int:
        return len(self.ref_indices)


# -- varints (unsigned LEB128) ------------------------------------------------------------------------------------


def _put_varint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError("varint must be non-negative")
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


class _Reader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise TruncatedError(f"file is truncated (while reading {what})")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        v, shift = 0, 0
        while True:
            b = self.u8(what)
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 35:
                raise FormatError(f"corrupt file: {what} is not a valid varint")
        if v > limit:
            raise FormatError(f"corrupt file: {what} = {v} is out of range (max {limit})")
        return v


# -- write / read -------------------------------------------------------------------------------------------------


def pack(f: ClcFile) -> bytes:
    if not (0 < f.width <= MAX_DIMENSION and 0 < f.height <= MAX_DIMENSION):
        raise ValueError(f"image size {f.width}x{f.height} out of range")
    if len(f.model_id) != FILE_ID_BYTES or len(f.dictionary_id) != FILE_ID_BYTES:
        raise ValueError(f"ids must be {FILE_ID_BYTES} bytes")
    if len(f.ref_indices) > MAX_REFS:
        raise ValueError(f"at most {MAX_REFS} references")
    if not f.tiles or any(len(t.slices) != len(f.tiles[0].slices) for t in f.tiles):
        raise ValueError("every tile needs the same number of slice strings")
    out = bytearray(MAGIC)
    out.append(VERSION)
    out.append(FLAG_GRAYSCALE if f.grayscale else 0)
    _put_varint(out, f.width)
    _put_varint(out, f.height)
    out += f.model_id
    out += struct.pack(">H", round(f.quality * QUALITY_SCALE))
    out.append(len(f.ref_indices))
    if f.ref_indices:
        out += f.dictionary_id
        for i in f.ref_indices:
            _put_varint(out, i)
    _put_varint(out, f.tile_size)
    out.append(len(f.tiles[0].slices))
    for t in f.tiles:
        for s in [t.hyper, *t.slices]:
            _put_varint(out, len(s))
    for t in f.tiles:
        out += t.hyper
        for s in t.slices:
            out += s
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


def unpack(data: bytes) -> ClcFile:
    """Parse and fully validate a .clc file.

    The header says how long the file must be, so truncation is reported as such; then the CRC-32 is checked
    before any entropy-coded byte is handed to the decoder.
    """
    data = bytes(data)
    if len(data) == 0:
        raise NotAClcFileError("empty input: not a .clc file")
    if not MAGIC.startswith(data[: len(MAGIC)]):
        raise NotAClcFileError("not a .clc file (bad magic bytes)")
    if len(data) <= len(MAGIC):
        raise TruncatedError("file is truncated (shorter than a .clc header)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise UnsupportedVersionError(f".clc version {version} is not supported (this build reads version {VERSION})")
    r = _Reader(data, len(data))
    r.take(len(MAGIC) + 1, "magic")
    flags = r.u8("flags")
    if flags & ~KNOWN_FLAGS:
        raise FormatError(f"corrupt file: unknown flags 0x{flags:02x}")
    width = r.varint("width", MAX_DIMENSION)
    height = r.varint("height", MAX_DIMENSION)
    if width == 0 or height == 0:
        raise FormatError("corrupt file: zero image size")
    model_id = r.take(FILE_ID_BYTES, "model id")
    (qraw,) = struct.unpack(">H", r.take(2, "quality"))
    m = r.u8("reference count")
    if m > MAX_REFS:
        raise FormatError(f"corrupt file: {m} references (max {MAX_REFS})")
    dict_id, indices = NO_DICTIONARY, []
    if m:
        dict_id = r.take(FILE_ID_BYTES, "dictionary id")
        indices = [r.varint("reference index", 1 << 31) for _ in range(m)]
    tile = r.varint("tile size", MAX_DIMENSION)
    if tile != 0:  # docs/format.md: reserved for tiled files, which no version writes yet
        raise FormatError(f"tiled .clc files (tile size {tile}) are reserved and not supported by this build")
    n_slices = r.u8("slice count")
    if n_slices == 0:
        raise FormatError("corrupt file: no latent slices")
    lengths = [r.varint("string length", 1 << 32) for _ in range(n_slices + 1)]
    expected = r.pos + sum(lengths) + 4
    if len(data) < expected:
        raise TruncatedError(f"file is truncated: {len(data)} of {expected} bytes")
    if len(data) > expected:
        raise FormatError(f"corrupt file: {len(data) - expected} unexpected bytes after the end")
    (stored,) = struct.unpack(">I", data[-4:])
    if zlib.crc32(data[:-4]) != stored:
        raise ChecksumError("checksum mismatch: the file is corrupt")
    if any(n < RANS_MIN_BYTES or n % RANS_WORD for n in lengths):
        raise FormatError("corrupt file: an entropy-coded string has an impossible length")
    parts = [r.take(n, "entropy-coded data") for n in lengths]
    return ClcFile(width, height, model_id, qraw / QUALITY_SCALE, bool(flags & FLAG_GRAYSCALE), dict_id, indices,
                   tile, [TileStreams(parts[0], parts[1:])])


def read_info(data: bytes) -> dict:
    """Header fields of a .clc file, its size and bits per pixel (from the whole file: every bit counted)."""
    f = unpack(data)
    streams = f.tiles[0]
    return {
        "format": f"clc v{VERSION}",
        "width": f.width,
        "height": f.height,
        "mode": "L" if f.grayscale else "RGB",
        "quality": f.quality,
        "model_id": f.model_id.hex(),
        "dictionary_id": f.dictionary_id.hex() if f.num_refs else None,
        "references": f.ref_indices,
        "tile_size": f.tile_size,
        "slices": len(streams.slices),
        "hyper_bytes": len(streams.hyper),
        "slice_bytes": [len(s) for s in streams.slices],
        "bytes": len(data),
        "bpp": 8 * len(data) / (f.width * f.height),
    }
