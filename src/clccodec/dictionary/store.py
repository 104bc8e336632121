"""A loaded reference dictionary: what the encoder retrieves from and the decoder fetches values from, by index.

    d = ReferenceDictionary.load(clccodec.defaults.DEFAULT_DICTIONARY)
    idx = d.retrieve(model, x, 3)        # encoder: top-3 entries for the padded image x (1, 3, H, W) in [0, 1]
    v = d.values(idx)                    # decoder (and encoder): int8 codes (R, C_r, h, w), by index only
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .pictures import Pictures
from ..io.files import read_bytes, write_atomic
from ..errors import DictionaryError, DictionaryMismatchError, ReferenceIndexError
from ..format.ids import file_id
from ..format import clcdict
from ..format.clcdict import DictData
from .features import FeatureExtractor, LatentExtractor, ResNet50Extractor, query_features
from .retrieval import CANDIDATES_PER_QUERY, DEFAULT_MERGE, DEFAULT_QUERY, DEFAULT_ROTATE, RetrievalIndex, \
    merge_results

RESNET_WEIGHTS_ENV = "CLC_RESNET50_WEIGHTS"

# Encode-time query (chosen by measurement with an experiment script since removed; numbers in dictionaries/README.md): SPP of
# the whole image's latent (the encoder's own analysis: no extra pass), hits de-duplicated, top M. The paper's
# extra 180-degree view cost a second analysis pass and saved no bits (v4 weights: -0.84 % against -0.61 % without
# it); per-tile queries covered the image's tokens no better than random entries. Encoder-only: changing it never
# affects decoding of existing files.


class ReferenceDictionary:
    def __init__(self, data: DictData, path: str | Path | None = None, size_on_disk: int | None = None) -> None:
        self.data = data
        self.path = Path(path) if path is not None else None
        self.size_on_disk = size_on_disk
        self.model_id = bytes(data.model_id)
        self.id = clcdict.dictionary_id(self.model_id, data.values, data.pictures)
        self.pictures = Pictures(data.pictures)  # block copy (blockcopy.py); empty for most dictionaries
        self.extractor_weights: str | Path | None = None  # ResNet-50 weights for resnet50 dictionaries
        self.query, self.merge, self.rotate = DEFAULT_QUERY, DEFAULT_MERGE, DEFAULT_ROTATE
        self._index: RetrievalIndex | None = None
        self._index_gpu = False
        self._extractor: FeatureExtractor | None = None
        self._device_values: dict[torch.device, Tensor] = {}  # value tables resident on accelerators

    # -- files ---------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, extractor_weights: str | Path | None = None) -> "ReferenceDictionary":
        path = Path(path)
        d = cls.from_bytes(read_bytes(path, DictionaryError, "reference dictionary "), str(path))
        d.path = path
        d.extractor_weights = extractor_weights
        return d

    @classmethod
    def from_bytes(cls, data: bytes, name: str | None = None) -> "ReferenceDictionary":
        return cls(clcdict.unpack(bytes(data), name), None, len(data))

    def to_bytes(self) -> bytes:
        return clcdict.pack(self.data)

    def save(self, path: str | Path, force: bool = False) -> int:
        """Write atomically (temporary file + rename); returns the size in bytes."""
        blob = self.to_bytes()
        write_atomic(path, blob, force)
        self.path, self.size_on_disk = Path(path), len(blob)
        return len(blob)

    # -- what the decoder needs ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.data.size

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def file_id(self) -> bytes:
        """The id as .clc headers store it."""
        return file_id(self.id)

    @property
    def value_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.values.shape[1:])  # type: ignore[return-value]

    def values(self, indices: list[int], device: torch.device | str = "cpu") -> Tensor:
        """Int8 reference codes (R, C_r, h, w) of the given entries (what model.compress/decompress take).

        The one check of a file's reference indices: an index beyond the dictionary is a ReferenceIndexError
        (a corrupt file). On a GPU the whole value table stays resident (K x C_r x h x w int8: 24 MiB for
        K = 3000) and entries are gathered there by index, so decoding many files moves only the indices.
        """
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < len(self)]
        if bad:
            raise ReferenceIndexError(f"corrupt file: reference index {bad[0]} is outside dictionary "
                                      f"{self.id_hex} ({len(self)} entries)")
        device = torch.device(device)
        if not idx:
            return torch.zeros((0, *self.value_shape), dtype=torch.int8, device=device)
        if device.type == "cpu":
            return torch.from_numpy(self.data.values[np.asarray(idx, dtype=np.int64)].copy())
        table = self._device_values.get(device)
        if table is None:
            table = self._device_values[device] = torch.from_numpy(self.data.values).to(device)
        return table.index_select(0, torch.tensor(idx, dtype=torch.long, device=device))

    # -- what the encoder needs ---------------------------------------------------------------------------------

    def check_model(self, model: nn.Module) -> None:
        mid = bytes(getattr(model, "model_id", b""))[: len(self.model_id)]
        if mid != self.model_id:
            raise DictionaryMismatchError(
                f"dictionary {self.id_hex} was built for model {self.model_id.hex()}, not for the loaded model "
                f"{mid.hex() or '(no id)'}")

    def extractor(self, model: nn.Module, device: torch.device | str | None = None) -> FeatureExtractor:
        """The feature extractor this dictionary's keys were made with (checked by fingerprint)."""
        self.check_model(model)
        if self.data.extractor == "latent":
            return LatentExtractor(model)
        if self._extractor is None:
            weights = self.extractor_weights or os.environ.get(RESNET_WEIGHTS_ENV)
            if not weights:
                raise DictionaryError(
                    f"dictionary {self.id_hex} retrieves with resnet50 features: set {RESNET_WEIGHTS_ENV} to the "
                    f"ResNet-50 weights file it was built with (fingerprint {self.data.extractor_id.hex()})")
            if device is None:
                device = next(model.parameters()).device
            self._extractor = ResNet50Extractor(weights, device)
        if self._extractor.fingerprint != self.data.extractor_id:
            raise DictionaryMismatchError(
                f"dictionary {self.id_hex} was built with ResNet-50 weights {self.data.extractor_id.hex()}, not with "
                f"{self._extractor.fingerprint.hex()}")
        return self._extractor

    def index(self, gpu: bool = False) -> RetrievalIndex:
        if self._index is None or self._index_gpu != gpu:
            self._index = RetrievalIndex(self.data.mean, self.data.components, self.data.keys, gpu=gpu)
            self._index_gpu = gpu
        return self._index

    @torch.no_grad()
    def search(self, model: nn.Module, x: Tensor, k: int, query: str | None = None, rotate: bool | None = None,
               latent: Tensor | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Raw hits: one (distances, indices) pair of shape (n_queries, k) per view of the image.

        `latent`: model.analyse(x), which the encoder computes anyway; a `latent` dictionary then queries the
        unrotated view with it instead of running g_a again (the same features, bit for bit)."""
        ext = self.extractor(model, x.device)
        views = query_features(ext, x, self.data.crop, query or self.query, self.rotate if rotate is None else rotate,
                               latent if ext.name == "latent" else None)
        index = self.index(gpu=x.device.type == "cuda")
        return [index.search(v, k) for v in views]

    def retrieve(self, model: nn.Module, x: Tensor, m: int, *, query: str | None = None, merge: str | None = None,
                 rotate: bool | None = None, latent: Tensor | None = None) -> list[int]:
        """Indices of the top-m entries for the padded image x (1, 3, H, W) in [0, 1]; m = 0 gives []."""
        if m <= 0:
            return []
        m = min(m, len(self))
        hits = self.search(model, x, min(len(self), m + CANDIDATES_PER_QUERY), query, rotate, latent)
        return merge_results(hits, m, merge or self.merge)

    # -- description ---------------------------------------------------------------------------------------------

    def info(self) -> dict:
        return clcdict.describe(self.data, self.id, self.size_on_disk)
