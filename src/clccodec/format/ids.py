"""Ids of models and dictionaries, and the shorter form a .clc header stores.

A model id (clccodec.model.weights.model_id) and a dictionary id (clccodec.format.clcdict.dictionary_id)
are 8-byte hashes; a .clcdict names its model by the full 8 bytes. A .clc file names both by their first 4
bytes (`file_id`), which is what the decoder compares.
"""

from __future__ import annotations

MODEL_ID_BYTES = 8
DICTIONARY_ID_BYTES = 8
EXTRACTOR_ID_BYTES = 8  # fingerprint of a dictionary's feature extractor (the model id for `latent`)
FILE_ID_BYTES = 4  # each id as a .clc header stores it
NO_DICTIONARY = bytes(FILE_ID_BYTES)  # the header's dictionary id when it has no references


def file_id(full_id: bytes) -> bytes:
    """The prefix of a model or dictionary id that .clc headers store and decoders compare."""
    return bytes(full_id[:FILE_ID_BYTES])
