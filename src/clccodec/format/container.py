"""The .clc container, versions 1 and 2 (byte-level specification: docs/format.md).

Version 2 (written by default):

    magic "CLC" | 2 | flags | width, height (varint) | model id (4) | quality (u16, x256)
    | M (u8) | [dictionary id (4) | M reference indices (varint)]  (only when M > 0)
    | tile size (varint, 0) | S (u8, the model's slice count) | K (u8, slice strings present, 0..S)
    | N (u8, metadata sections) | N x (kind u8, length varint) | K + 1 string lengths (varint)
    | [residual length (varint): only with flag 0x02]
    | header CRC-32 (u32)
    | sections in decoding order, each followed by its CRC-32: metadata 1..N, hyper string, slices 1..K,
      [residual: what the lossy layers missed, model/residual.py]

A truncated version-2 file can be read up to its last complete section (`unpack(data, partial=True)`).

Version 1 (read, and written only on request: `pack(f, version=1)`):

    magic "CLC" | 1 | flags | ... | tile size | S | S + 1 string lengths | all strings | CRC-32 of all before

Every field is checked on read; anything wrong raises a typed FormatError subclass, never a crash. This module
imports no torch (`clc info` reads headers only).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from ..errors import ChecksumError, ClcError, FormatError, NotAClcFileError, TruncatedError, UnsupportedVersionError
from .ids import FILE_ID_BYTES, NO_DICTIONARY

MAGIC = b"CLC"
VERSION = 2  # what pack() writes
VERSIONS = (1, 2)  # what unpack() reads
MAX_DIMENSION = 1 << 20
QUALITY_SCALE = 256  # a file stores the quality as round(q * 256) (u16)
MAX_REFS = 64  # references a file can name
FLAG_GRAYSCALE = 0x01
FLAG_RESIDUAL = 0x02  # version 2: a residual section follows the slices (near-lossless / lossless files)
KNOWN_FLAGS = FLAG_GRAYSCALE | FLAG_RESIDUAL
MAX_RESIDUAL_BYTES = 1 << 32
MIN_RESIDUAL_BYTES = 5  # method, bound, block size, planes, class-map length (model/residual.py)
# the sections a version-2 file may hold before its hyper-latent, by kind code: the source image's colour profile
# and EXIF/XMP (metadata, restored on decode), the block-copy section (blockcopy.py, pasted after decoding) and
# the alpha plane (alpha.py, lossless)
METADATA_KINDS = {1: "icc", 2: "exif", 3: "xmp"}
COPY_KIND = "copy"
ALPHA_KIND = "alpha"
SECTION_KINDS = {**METADATA_KINDS, 4: COPY_KIND, 5: ALPHA_KIND}
SECTION_CODES = {v: k for k, v in SECTION_KINDS.items()}
METADATA_CODES = {v: k for k, v in METADATA_KINDS.items()}
MAX_METADATA_BYTES = 1 << 24  # per section
MAX_ALPHA_BYTES = 1 << 30  # the alpha plane of the largest image this build codes, deflated, with room to spare
CRC_BYTES = 4
# rANS output (CompressAI's coder) is whole 32-bit words and ends with the coder's 64-bit final state
RANS_WORD, RANS_MIN_BYTES = 4, 8


def quantize_quality(q: float) -> float:
    """The quality actually coded: a .clc file stores round(q * QUALITY_SCALE), so every coded quality is exact
    in binary."""
    return round(q * QUALITY_SCALE) / QUALITY_SCALE


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
    hyper: bytes = b""  # the entropy-coded strings: the hyper-latent's, then one per slice present
    slices: list[bytes] = field(default_factory=list)
    # version 2: the model's slice count S (the strings present may be fewer: a preview file, or a truncated
    # file read with partial=True); 0 = as many as there are strings
    slices_total: int = 0
    metadata: dict[str, bytes] = field(default_factory=dict)  # "icc" / "exif" / "xmp" -> raw bytes
    block_copy: bytes = b""  # version 2: the copy section (blockcopy.py), b"" if none; needs references
    alpha: bytes = b""  # version 2: the alpha section (alpha.py), b"" for an opaque image
    residual: bytes = b""  # version 2: the residual section (model/residual.py), b"" for a lossy file
    version: int = VERSION  # of the file read (pack writes `version` argument's)
    truncated: bool = False  # read with partial=True from a file that ends early

    def __post_init__(self) -> None:
        if not self.slices_total:
            self.slices_total = len(self.slices)

    @property
    def mode(self) -> str:
        """The decoded image's PIL mode: RGB or L, with alpha RGBA or LA."""
        return ("LA" if self.alpha else "L") if self.grayscale else ("RGBA" if self.alpha else "RGB")

    @property
    def num_refs(self) -> int:
        return len(self.ref_indices)

    @property
    def slices_present(self) -> int:
        return len(self.slices)


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
        self.flags = 0  # the header's, once read

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


def _common_header(f: ClcFile, version: int) -> bytearray:
    """magic .. tile size: the fields both versions share."""
    if not (0 < f.width <= MAX_DIMENSION and 0 < f.height <= MAX_DIMENSION):
        raise ValueError(f"image size {f.width}x{f.height} out of range")
    if len(f.model_id) != FILE_ID_BYTES or len(f.dictionary_id) != FILE_ID_BYTES:
        raise ValueError(f"ids must be {FILE_ID_BYTES} bytes")
    if len(f.ref_indices) > MAX_REFS:
        raise ValueError(f"at most {MAX_REFS} references")
    out = bytearray(MAGIC)
    out.append(version)
    out.append((FLAG_GRAYSCALE if f.grayscale else 0) | (FLAG_RESIDUAL if f.residual else 0))
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
    return out


def section_crc(header_crc: int, index: int, data: bytes) -> int:
    """Version 2: CRC-32 of (header CRC u32, section number u8, the section's bytes): a section moved to another
    place or spliced in from another file fails its check even when the lengths agree."""
    return zlib.crc32(data, zlib.crc32(struct.pack(">IB", header_crc, index & 0xFF)))


def _pack_v1(f: ClcFile) -> bytes:
    if f.metadata or f.block_copy or f.alpha or f.residual:
        raise ValueError("version 1 files cannot hold metadata, a copy section, alpha or a residual")
    if f.slices_total > len(f.slices):
        raise ValueError("version 1 files hold every slice")
    out = _common_header(f, 1)
    out.append(len(f.slices))
    for s in [f.hyper, *f.slices]:
        _put_varint(out, len(s))
    for s in [f.hyper, *f.slices]:
        out += s
    out += struct.pack(">I", zlib.crc32(out))
    return bytes(out)


def pack(f: ClcFile, version: int = VERSION) -> bytes:
    """The bytes of a .clc file (version 2 unless asked for 1, which has no metadata and no preview files)."""
    if version == 1:
        return _pack_v1(f)
    if version != 2:
        raise ValueError(f"cannot write .clc version {version}")
    if f.tile_size:
        raise ValueError("version 2 writes one tile")
    total = max(f.slices_total, len(f.slices))
    if not 0 < total <= 255:
        raise ValueError("1 .. 255 slices")
    unknown = set(f.metadata) - set(METADATA_CODES)
    if unknown:
        raise ValueError(f"unknown metadata kinds {sorted(unknown)}")
    if f.block_copy and not f.ref_indices:
        raise ValueError("a copy section needs references (the dictionary it copies from)")
    if f.residual and len(f.slices) < total:
        raise ValueError("a residual needs every slice (it corrects the complete lossy layer)")
    meta = [(METADATA_CODES[k], v) for k, v in sorted(f.metadata.items(), key=lambda kv: METADATA_CODES[kv[0]])
            if v] + [(SECTION_CODES[k], v) for k, v in ((COPY_KIND, f.block_copy), (ALPHA_KIND, f.alpha)) if v]
    if any(len(v) > _section_limit(SECTION_KINDS[code]) for code, v in meta):
        raise ValueError("a section before the hyper-latent is larger than the format allows")
    out = _common_header(f, 2)
    out += bytes([total, len(f.slices), len(meta)])
    for code, v in meta:
        out.append(code)
        _put_varint(out, len(v))
    for s in [f.hyper, *f.slices]:
        _put_varint(out, len(s))
    if f.residual:
        _put_varint(out, len(f.residual))
    hcrc = zlib.crc32(out)
    out += struct.pack(">I", hcrc)
    for i, s in enumerate([v for _, v in meta] + [f.hyper, *f.slices] + ([f.residual] if f.residual else [])):
        out += s
        out += struct.pack(">I", section_crc(hcrc, i, s))
    return bytes(out)


def _section_limit(kind: str) -> int:
    return MAX_ALPHA_BYTES if kind == ALPHA_KIND else MAX_METADATA_BYTES


@dataclass
class Layout:
    """Where everything is in a version-2 file (from its header alone; nothing verified past the header)."""

    header_end: int  # offset of the first section (after the header CRC)
    header_crc: int
    slices_total: int
    metadata_kinds: list[str]  # of the sections before the hyper-latent, in file order (metadata, then "copy")
    sections: list[tuple[int, int]]  # (offset, length) of each section's bytes, in file order (CRC follows)
    residual: bool = False  # the last section is the residual (after the slices)

    @property
    def end(self) -> int:
        return self.sections[-1][0] + self.sections[-1][1] + CRC_BYTES if self.sections else self.header_end

    @property
    def hyper_index(self) -> int:
        return len(self.metadata_kinds)

    @property
    def strings_end(self) -> int:
        """The index after the last slice string's section (the residual's index, when there is one)."""
        return len(self.sections) - self.residual


def _start(data: bytes) -> tuple[_Reader, int, dict]:
    """Magic, version and the fields both versions share."""
    if len(data) == 0:
        raise NotAClcFileError("empty input: not a .clc file")
    if not MAGIC.startswith(data[: len(MAGIC)]):
        raise NotAClcFileError("not a .clc file (bad magic bytes)")
    if len(data) <= len(MAGIC):
        raise TruncatedError("file is truncated (shorter than a .clc header)")
    version = data[len(MAGIC)]
    if version not in VERSIONS:
        raise UnsupportedVersionError(f".clc version {version} is not supported (this build reads versions "
                                      f"{', '.join(map(str, VERSIONS))})")
    r = _Reader(data, len(data))
    r.take(len(MAGIC) + 1, "magic")
    flags = r.flags = r.u8("flags")
    if flags & ~(KNOWN_FLAGS if version >= 2 else FLAG_GRAYSCALE):
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
    fields = dict(width=width, height=height, model_id=model_id, quality=qraw / QUALITY_SCALE,
                  grayscale=bool(flags & FLAG_GRAYSCALE), dictionary_id=dict_id, ref_indices=indices, tile_size=tile)
    return r, version, fields


def _check_rans_lengths(lengths: list[int]) -> None:
    if any(n < RANS_MIN_BYTES or n % RANS_WORD for n in lengths):
        raise FormatError("corrupt file: an entropy-coded string has an impossible length")


def _unpack_v1(data: bytes, r: _Reader, fields: dict, partial: bool) -> ClcFile:
    n_slices = r.u8("slice count")
    if n_slices == 0:
        raise FormatError("corrupt file: no latent slices")
    lengths = [r.varint("string length", 1 << 32) for _ in range(n_slices + 1)]
    expected = r.pos + sum(lengths) + 4
    if len(data) < expected:
        hint = " (a version-1 file has one checksum for everything: only version 2 can be decoded partially)"
        raise TruncatedError(f"file is truncated: {len(data)} of {expected} bytes" + (hint if partial else ""))
    if len(data) > expected:
        raise FormatError(f"corrupt file: {len(data) - expected} unexpected bytes after the end")
    (stored,) = struct.unpack(">I", data[-4:])
    if zlib.crc32(data[:-4]) != stored:
        raise ChecksumError("checksum mismatch: the file is corrupt")
    _check_rans_lengths(lengths)
    parts = [r.take(n, "entropy-coded data") for n in lengths]
    return ClcFile(**fields, hyper=parts[0], slices=parts[1:], version=1)


def layout(data: bytes) -> Layout:
    """Parse a version-2 header (checking its CRC) and say where every section lies."""
    r, version, _ = _start(bytes(data))
    if version != 2:
        raise UnsupportedVersionError(f"version {version} files have no section layout")
    return _layout_v2(r)


def _layout_v2(r: _Reader, verify: bool = True) -> Layout:
    total = r.u8("slice count")
    if total == 0:
        raise FormatError("corrupt file: no latent slices")
    present = r.u8("slices present")
    if present > total:
        raise FormatError(f"corrupt file: {present} slice strings for {total} slices")
    n_meta = r.u8("metadata count")
    kinds, meta_lengths = [], []
    for _ in range(n_meta):
        code = r.u8("metadata kind")
        if code not in SECTION_KINDS:
            raise FormatError(f"corrupt file: unknown metadata kind {code}")
        if SECTION_KINDS[code] in kinds:
            raise FormatError(f"corrupt file: two {SECTION_KINDS[code]} sections")
        kinds.append(SECTION_KINDS[code])
        meta_lengths.append(r.varint(f"{kinds[-1]} section length", _section_limit(kinds[-1])))
    lengths = [r.varint("string length", 1 << 32) for _ in range(present + 1)]
    residual = bool(r.flags & FLAG_RESIDUAL)
    if residual and present < total:
        raise FormatError("corrupt file: a residual in a file without every slice")
    residual_length = [r.varint("residual length", MAX_RESIDUAL_BYTES)] if residual else []
    if residual and residual_length[0] < MIN_RESIDUAL_BYTES:
        raise FormatError("corrupt file: a residual section too short to hold its parameters")
    end_of_fields = r.pos
    (stored,) = struct.unpack(">I", r.take(CRC_BYTES, "header checksum"))
    if not verify:  # (tests: where the checksums go, to reseal a mutated file)
        stored = zlib.crc32(r.data[:end_of_fields])
    elif zlib.crc32(r.data[:end_of_fields]) != stored:
        raise ChecksumError("header checksum mismatch: the file is corrupt")
    if verify:
        _check_rans_lengths(lengths)
    sections, pos = [], r.pos
    for n in meta_lengths + lengths + residual_length:
        sections.append((pos, n))
        pos += n + CRC_BYTES
    return Layout(r.pos, stored, total, kinds, sections, residual)


def _unpack_v2(data: bytes, r: _Reader, fields: dict, partial: bool) -> ClcFile:
    lay = _layout_v2(r)
    if len(data) > lay.end:
        raise FormatError(f"corrupt file: {len(data) - lay.end} unexpected bytes after the end")
    if len(data) < lay.end and not partial:
        raise TruncatedError(f"file is truncated: {len(data)} of {lay.end} bytes (its complete slices decode with "
                             "--partial, partial=True in Python)")
    parts = []
    for i, (off, n) in enumerate(lay.sections):
        if off + n + CRC_BYTES > len(data):  # only with partial: this section and all after it are missing
            if i <= lay.hyper_index:
                raise TruncatedError(f"file is truncated before the end of the hyper-latent ({len(data)} of "
                                     f"{lay.sections[lay.hyper_index][0] + lay.sections[lay.hyper_index][1] + 4}"
                                     " bytes): nothing to decode")
            break
        s = data[off : off + n]
        (stored,) = struct.unpack(">I", data[off + n : off + n + CRC_BYTES])
        if section_crc(lay.header_crc, i, s) != stored:
            what = lay.metadata_kinds[i] if i < lay.hyper_index else (
                "hyper-latent" if i == lay.hyper_index else "residual" if i == lay.strings_end
                else f"slice {i - lay.hyper_index}")
            raise ChecksumError(f"checksum mismatch in the {what} section: the file is corrupt")
        parts.append(s)
    meta = dict(zip(lay.metadata_kinds, parts[: lay.hyper_index]))
    copy = meta.pop(COPY_KIND, b"")
    if copy and not fields["ref_indices"]:
        raise FormatError("corrupt file: a copy section in a file without references")
    alpha = meta.pop(ALPHA_KIND, b"")
    strings = parts[lay.hyper_index : lay.strings_end]
    residual = parts[lay.strings_end] if lay.residual and len(parts) > lay.strings_end else b""
    return ClcFile(**fields, hyper=strings[0], slices=strings[1:], slices_total=lay.slices_total,
                   metadata=meta, block_copy=copy, alpha=alpha, residual=residual, version=2,
                   truncated=len(data) < lay.end)


def reseal(data: bytes) -> bytes:
    """The bytes with every checksum recomputed (version 1's trailing CRC-32; version 2's header CRC and the CRC
    of every section inside the data): for fuzzing, so that mutations reach the parsers behind the checksums. A
    header too broken to parse is left as it is."""
    if len(data) < 4:
        return bytes(data)
    if data[3:4] != b"\x02":
        return bytes(data[:-4]) + struct.pack(">I", zlib.crc32(data[:-4]))
    try:
        lay = _layout_v2(_start(bytes(data))[0], verify=False)
    except ClcError:
        return bytes(data)
    out = bytearray(data)
    out[lay.header_end - CRC_BYTES : lay.header_end] = struct.pack(">I", lay.header_crc)
    for i, (off, n) in enumerate(lay.sections):
        if off + n + CRC_BYTES <= len(out):
            out[off + n : off + n + CRC_BYTES] = struct.pack(">I", section_crc(lay.header_crc, i, out[off : off + n]))
    return bytes(out)


def unpack(data: bytes, partial: bool = False) -> ClcFile:
    """Parse and fully validate a .clc file (version 1 or 2).

    The header says how long the file must be, so truncation is reported as such; every checksum is checked
    before any entropy-coded byte is handed to the decoder. With `partial`, a version-2 file that ends early
    gives its complete sections (at least the hyper-latent): `truncated` is set and the slice strings are the
    complete ones, in order. A damaged (not just short) file is an error either way.
    """
    data = bytes(data)
    r, version, fields = _start(data)
    return (_unpack_v1 if version == 1 else _unpack_v2)(data, r, fields, partial)


def read_info(data: bytes) -> dict:
    """Header fields of a .clc file, its size and bits per pixel (from the whole file: every bit counted).

    `slice_ends`: the byte offset at which each slice's section ends, i.e. the file length a prefix holding
    slices 1..i needs (`hyper_end` for the hyper-latent alone: the smallest decodable prefix)."""
    data = bytes(data)
    f = unpack(data)
    info = {
        "format": f"clc v{f.version}",
        "width": f.width,
        "height": f.height,
        "mode": f.mode,
        "quality": f.quality,
        "model_id": f.model_id.hex(),
        "dictionary_id": f.dictionary_id.hex() if f.num_refs else None,
        "references": f.ref_indices,
        "tile_size": f.tile_size,
        "slices": f.slices_total,
        "hyper_bytes": len(f.hyper),
        "slice_bytes": [len(s) for s in f.slices],
    }
    if f.version >= 2:
        lay = _layout_v2(_start(data)[0])
        ends = [off + n + CRC_BYTES for off, n in lay.sections]
        info["slices_present"] = f.slices_present
        info["metadata"] = {k: len(v) for k, v in f.metadata.items()}
        info["copy_bytes"] = len(f.block_copy)
        info["alpha_bytes"] = len(f.alpha)
        info["hyper_end"] = ends[lay.hyper_index]
        info["slice_ends"] = ends[lay.hyper_index + 1 : lay.strings_end]
        info["residual_bytes"] = len(f.residual)
        if f.residual:
            info["near_lossless"] = f.residual[1]  # the bound: the section's second byte (model/residual.py)
    info["bytes"] = len(data)
    info["bpp"] = 8 * len(data) / (f.width * f.height)
    return info
