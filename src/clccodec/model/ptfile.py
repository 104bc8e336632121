"""Read a `torch.save`d weights file without torch: the zip archive's pickle, its tensors as numpy arrays.

The torch-free decoder (lite.py) loads the shipped weights this way, so a one-shot `clc decode` never pays for
`import torch`. Only what a weights file holds is understood (dicts, lists, numbers, strings and dense tensors
of the dtypes below); anything else in the pickle is refused, never executed, like torch's weights_only load.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

# torch's storage classes as the pickle names them -> numpy dtypes (torch.save writes little-endian data)
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": None,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
# numpy dtypes -> the name torch gives the dtype of the tensor (what model ids hash: weights.model_id)
TORCH_DTYPE_NAMES = {np.dtype(np.float32): "torch.float32", np.dtype(np.float64): "torch.float64",
                     np.dtype(np.float16): "torch.float16", np.dtype(np.int64): "torch.int64",
                     np.dtype(np.int32): "torch.int32", np.dtype(np.int16): "torch.int16",
                     np.dtype(np.int8): "torch.int8", np.dtype(np.uint8): "torch.uint8",
                     np.dtype(np.bool_): "torch.bool"}


WEIGHTS_FORMAT = "clc-weights/2"  # what weights.save_weights writes
READABLE_FORMATS = ("clc-weights/1", WEIGHTS_FORMAT)  # format 1: the same, with no int16 grids


class PtFileError(ValueError):
    """Not a weights file this reader understands."""


class _Storage:
    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """The tensor a storage view describes; the view is checked to lie inside its storage (as_strided would read
    any memory a hostile file pointed it at)."""
    size, stride = tuple(size), tuple(stride)
    if not (isinstance(offset, int) and len(size) == len(stride)
            and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))):
        raise PtFileError("bad tensor view")
    if 0 in size:
        return np.empty(size, storage.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage):
        raise PtFileError("tensor view beyond its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * storage.itemsize
                                                                                        for s in stride))
    return np.ascontiguousarray(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and STORAGE_DTYPES.get(name) is not None:
            return _Storage(STORAGE_DTYPES[name])
        raise PtFileError(f"unexpected object {module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise PtFileError("unexpected persistent record")
        data = self.archive.read(f"{self.prefix}data/{pid[2]}")
        return np.frombuffer(data, dtype=np.dtype(pid[1].dtype).newbyteorder("<"))


def load(path: str | Path) -> Any:
    """The object a `torch.save(obj, path)` wrote, tensors as (read-only-safe, contiguous) numpy arrays."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise PtFileError("no data.pkl in the archive")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in z.namelist() and z.read(byteorder).strip() != b"little":
            raise PtFileError("big-endian tensors")
        with z.open(pkl[0]) as f:
            return _Unpickler(f, z, prefix).load()
