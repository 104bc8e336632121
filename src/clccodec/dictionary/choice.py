"""Which reference dictionary a model codes with: the one rule both the encoder (api.Codec) and every decoder
backend follow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..defaults import default_dictionary_path
from ..errors import DictionaryMismatchError
from ..format.ids import file_id

D = TypeVar("D")


def fitting_dictionary(arg: Any, model_id: bytes, load: Callable[[Path], D]) -> D | None:
    """`arg` None: the default dictionary if there is one and it was built for this model (else none); False:
    none; a path (loaded with `load`) or a loaded dictionary: that one, which must have been built for this
    model. `model_id`: the model's full id."""
    if arg is False:
        return None
    if arg is None:
        path = default_dictionary_path()
        if path is None:
            return None
        d = load(path)
        return d if file_id(d.model_id) == file_id(model_id) else None
    d = load(Path(arg)) if isinstance(arg, (str, Path)) else arg
    if file_id(d.model_id) != file_id(model_id):
        raise DictionaryMismatchError(f"dictionary {d.id.hex()} was built for model {d.model_id.hex()}, "
                                      f"not for the loaded model {model_id.hex()}")
    return d
