"""The .clcdict file, version 1 (byte-level specification: docs/format.md, section ".clcdict").

    magic "clcdict\\0" | version | flags | model id (8) | extractor name (u8 length + ASCII) | extractor id (8)
    | crop (u16) | stride (u16) | K (u32) | F (u32) | D (u32) | C_r, h, w (u16 each) | provenance (u32 length +
    UTF-8 JSON) | PCA mean (F x f32) | PCA components (D x F x f32) | keys (K x D x f32) | values (K x C_r x h x w
    x i8) | [pictures: P (u32) | P x (PNG length (u32) | PNG bytes)]  (only with flag 0x01) | SHA-256 of
    everything before it (32)

The pictures are the dictionary's source photos, for block copy (blockcopy.py, `clc build-dict --pictures`).

All integers are little-endian. Every field is checked on read; anything wrong raises DictionaryError with one
line that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import DictionaryError
from .ids import DICTIONARY_ID_BYTES, EXTRACTOR_ID_BYTES, MODEL_ID_BYTES, file_id

MAGIC = b"clcdict\0"
VERSION = 1
CHECKSUM_BYTES = 32
KNOWN_EXTRACTORS = ("latent", "resnet50")
# sanity limits: a corrupt header must not make us believe in absurd sizes
MAX_ENTRIES = 1 << 24
MAX_FEATURES = 1 << 20
MAX_CROP = 8192
MAX_PICTURES = 1 << 16
FLAG_PICTURES = 0x01

_FIXED = struct.Struct("<HHIIIHHH")  # crop, stride, K, F, D, C_r, h, w


@dataclass
class DictData:
    """Everything a .clcdict holds (arrays in memory, already validated)."""

    model_id: bytes
    extractor: str
    extractor_id: bytes
    crop: int
    stride: int
    mean: np.ndarray  # (F,) float32
    components: np.ndarray  # (D, F) float32
    keys: np.ndarray  # (K, D) float32
    values: np.ndarray  # (K, C_r, h, w) int8
    provenance: dict = field(default_factory=dict)
    pictures: list[bytes] = field(default_factory=list)  # PNG files of the source photos (block copy), or none

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])


def dictionary_id(model_id: bytes, values: np.ndarray, pictures: list[bytes] | None = None) -> bytes:
    """Hash of what a decoder uses: the model id, the values (with their shape) and the pictures, if any (a
    dictionary without pictures keeps the id it had before pictures existed).

    Keys, PCA and provenance only steer the encoder's choice of indices; a decoder given the same values decodes
    the same pixels, so they are deliberately not part of the id (fixing a provenance note does not orphan
    files). The whole file is still covered by its own checksum.
    """
    h = hashlib.sha256(b"clcdict-id/1")
    h.update(model_id)
    h.update(struct.pack("<IHHH", *values.shape))
    h.update(np.ascontiguousarray(values, dtype=np.int8).tobytes())
    if pictures:
        h.update(struct.pack("<I", len(pictures)))
        for png in pictures:
            h.update(hashlib.sha256(png).digest())
    return h.digest()[:DICTIONARY_ID_BYTES]


def pack(d: DictData) -> bytes:
    K, D = d.keys.shape
    F = d.mean.shape[0]
    if d.components.shape != (D, F) or d.values.shape[0] != K or d.values.ndim != 4:
        raise ValueError("inconsistent dictionary arrays")
    if len(d.model_id) != MODEL_ID_BYTES or len(d.extractor_id) != EXTRACTOR_ID_BYTES:
        raise ValueError(f"model id and extractor id must be {MODEL_ID_BYTES} and {EXTRACTOR_ID_BYTES} bytes")
    name = d.extractor.encode("ascii")
    prov = json.dumps(d.provenance, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    out = bytearray(MAGIC)
    out += bytes([VERSION, FLAG_PICTURES if d.pictures else 0])
    out += d.model_id
    out += bytes([len(name)]) + name
    out += d.extractor_id
    out += _FIXED.pack(d.crop, d.stride, K, F, D, *d.values.shape[1:])
    out += struct.pack("<I", len(prov)) + prov
    for a, dt in ((d.mean, "<f4"), (d.components, "<f4"), (d.keys, "<f4"), (d.values, "i1")):
        out += np.ascontiguousarray(a, dtype=dt).tobytes()
    if d.pictures:
        out += struct.pack("<I", len(d.pictures))
        for png in d.pictures:
            out += struct.pack("<I", len(png)) + png
    out += hashlib.sha256(out).digest()
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, pre: str) -> None:
        self.data, self.pos, self.pre = data, 0, pre

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise DictionaryError(f"{self.pre}.clcdict is truncated (while reading {what})")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def array(self, shape: tuple[int, ...], dtype: str, what: str) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(self.take(n, what), dtype=dtype).reshape(shape).astype(dtype[-2:], copy=True)


def unpack(data: bytes, name: str | None = None) -> DictData:
    """Parse and fully validate a .clcdict; `name` (usually the path) prefixes every error message."""
    pre = f"{name}: " if name else ""
    if len(data) == 0:
        raise DictionaryError(f"{pre}empty file, not a .clcdict")
    if not MAGIC.startswith(data[: len(MAGIC)]):
        raise DictionaryError(f"{pre}not a .clcdict file (bad magic bytes)")
    r = _Reader(data, pre)
    r.take(len(MAGIC), "magic")
    version = r.take(1, "version")[0]
    if version != VERSION:
        raise DictionaryError(f"{pre}.clcdict version {version} is not supported (this build reads version "
                              f"{VERSION})")
    flags = r.take(1, "flags")[0]
    if flags & ~FLAG_PICTURES:
        raise DictionaryError(f"{pre}corrupt .clcdict: unknown flags 0x{flags:02x}")
    model_id = r.take(MODEL_ID_BYTES, "model id")
    n = r.take(1, "extractor name")[0]
    raw_name = r.take(n, "extractor name")
    extractor_id = r.take(EXTRACTOR_ID_BYTES, "extractor id")
    crop, stride, K, F, D, C, h, w = _FIXED.unpack(r.take(_FIXED.size, "sizes"))
    (plen,) = struct.unpack("<I", r.take(4, "provenance length"))
    # the declared sizes say exactly how long the file must be: check that before reading any array
    header_end = r.pos
    expected = header_end + plen + 4 * (F + D * F + K * D) + K * C * h * w + CHECKSUM_BYTES
    if flags & FLAG_PICTURES:  # their lengths are read after the checksum check; at least the count is there
        expected += 4
    if len(data) < expected:
        raise DictionaryError(f"{pre}.clcdict is truncated ({len(data)} of {expected} bytes)")
    if len(data) > expected and not flags & FLAG_PICTURES:
        raise DictionaryError(f"{pre}corrupt .clcdict: {len(data) - expected} unexpected bytes after the end")
    if hashlib.sha256(data[:-CHECKSUM_BYTES]).digest() != data[-CHECKSUM_BYTES:]:
        raise DictionaryError(f"{pre}.clcdict checksum mismatch: the file is corrupt")
    # the bytes are what was written; now check that what was written makes sense
    try:
        extractor = raw_name.decode("ascii")
    except UnicodeDecodeError:
        extractor = "?"
    if extractor not in KNOWN_EXTRACTORS:
        raise DictionaryError(f"{pre}unknown feature extractor {extractor!r} (this build knows "
                              f"{', '.join(KNOWN_EXTRACTORS)})")
    if not (0 < K <= MAX_ENTRIES and 0 < F <= MAX_FEATURES and 0 < D <= F and C > 0 and h > 0 and w > 0
            and 0 < crop <= MAX_CROP and 0 < stride <= MAX_CROP):
        raise DictionaryError(f"{pre}corrupt .clcdict: sizes out of range (K={K}, F={F}, D={D}, "
                              f"values {C}x{h}x{w}, crop {crop}, stride {stride})")
    try:
        provenance = json.loads(r.take(plen, "provenance").decode("utf-8"))
        if not isinstance(provenance, dict):
            raise ValueError
    except ValueError:
        raise DictionaryError(f"{pre}corrupt .clcdict: provenance is not a JSON object") from None
    mean = r.array((F,), "<f4", "PCA mean")
    components = r.array((D, F), "<f4", "PCA components")
    keys = r.array((K, D), "<f4", "keys")
    values = r.array((K, C, h, w), "i1", "values")
    pictures: list[bytes] = []
    if flags & FLAG_PICTURES:
        (n_pic,) = struct.unpack("<I", r.take(4, "picture count"))
        if not 0 < n_pic <= MAX_PICTURES:
            raise DictionaryError(f"{pre}corrupt .clcdict: {n_pic} pictures")
        body = _Reader(data[: len(data) - CHECKSUM_BYTES], pre)
        body.pos = r.pos
        for _ in range(n_pic):
            (n,) = struct.unpack("<I", body.take(4, "picture length"))
            pictures.append(body.take(n, "picture"))
        if body.pos != len(body.data):
            raise DictionaryError(f"{pre}corrupt .clcdict: {len(body.data) - body.pos} unexpected bytes after "
                                  "the pictures")
    for a, what in ((mean, "PCA mean"), (components, "PCA components"), (keys, "keys")):
        if not np.isfinite(a).all():
            raise DictionaryError(f"{pre}corrupt .clcdict: non-finite numbers in the {what}")
    return DictData(model_id, extractor, extractor_id, crop, stride, mean, components, keys, values, provenance,
                    pictures)


def looks_like_clcdict(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def describe(d: DictData, dict_id: bytes, size: int | None) -> dict:
    """What `clc info NAME.clcdict` shows: the header fields, sizes and provenance (no torch needed)."""
    p = d.provenance
    sources = p.get("sources", [])
    c, h, w = d.values.shape[1:]
    return {
        "format": f"clcdict v{VERSION}",
        "dictionary_id": dict_id.hex(),
        "id_in_clc_files": file_id(dict_id).hex(),
        "K": d.size,  # entries
        "crop": d.crop,
        "stride": d.stride,
        "feature_extractor": d.extractor,
        "extractor_id": d.extractor_id.hex(),
        "key_dims": int(d.keys.shape[1]),
        "feature_dims": int(d.mean.shape[0]),
        "values": f"{c}x{h}x{w} int8 ({c * h * w} bytes each)",
        "model_id": d.model_id.hex(),
        "bytes": size,
        "source_images": len(sources),
        "source_crops": p.get("build", {}).get("crops"),
        "license": p.get("license"),
        "built_by": p.get("builder"),
        "build": p.get("build"),
        "sources": [s.get("file") for s in sources],
        "pictures": len(d.pictures),  # source photos held for block copy (blockcopy.py)
    }


def info(data: bytes, name: str | None = None) -> dict:
    """describe() of the bytes of a .clcdict (validated like any load)."""
    d = unpack(bytes(data), name)
    return describe(d, dictionary_id(d.model_id, d.values, d.pictures), len(data))
