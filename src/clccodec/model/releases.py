"""What a release ships, and what every earlier release shipped.

The default weights and dictionary are package data (`SHIPPED_DIR`), so they are found the same way in a
source checkout, an editable install and an installed wheel. `RELEASED_MODELS` lists every model id a release
has shipped, so that a file written by older weights gets an answer that says which release decodes it and how
to get those weights (`describe_model_mismatch`). Importing this module imports nothing heavy.

Compatibility policy (README, "Compatibility"): before 1.0 a file decodes with the weights of the release that
wrote it (the error names them); from 1.0 on released model ids are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format.ids import file_id



@dataclass(frozen=True)
class Release:
    model_id: str  # the full model id, 16 hex digits
    weights: str  # the weights' name
    version: str  # the clccodec version that shipped them
    commit: str  # the git commit that added them ("" if not yet known)
    path: str  # where that commit keeps the weights file
    dictionary_id: str  # the default dictionary shipped with them
    dictionary_path: str  # where that commit keeps it


# One line per release of new weights (newest last): model id, name, clccodec version, commit, weights path in
# that commit, default dictionary id, its path. `clc export-weights` prints the model id; `clc info` the
# dictionary's.
RELEASED_MODELS = (
    Release("8ce8796450724e5c", "v2", "0.1.0", "7612c6d", "models/clc-full.pt", "ecb6f56fda39ba6f", "dictionaries/default.clcdict"),
    Release("02cc9cca9ee501be", "v3", "0.1.0", "491d13b", "models/clc-full.pt", "51683e4c6944463d", "dictionaries/default.clcdict"),
    Release("b42cc3d3b8be2c8f", "v4", "0.2.0", "e5668d5", "src/clccodec/shipped/clc-full.pt", "94d7b565ccd68d1d",
            "src/clccodec/shipped/default.clcdict"),
    Release("b21d6c205d2cd616", "v5", "0.3.0", "87268fe", "src/clccodec/shipped/clc-full.pt", "d1e13910e237455a",
            "src/clccodec/shipped/default.clcdict"),
    Release("5e46455ef54b089e", "v6", "0.4.0", "e0e6cce", "src/clccodec/shipped/clc-full.pt", "7859e2aa6f382cbf",
            "src/clccodec/shipped/default.clcdict"),
    Release("bfb5f1e39f2ec27f", "v7", "0.5.0", "9830b31", "src/clccodec/shipped/clc-full.pt", "88a20e35cc9fc9a9",
            "src/clccodec/shipped/default.clcdict"),
    Release("87132fd24ea4acd1", "v8", "0.6.0", "0857518", "src/clccodec/shipped/clc-full.pt", "05b5b83a101ebd69",
            "src/clccodec/shipped/default.clcdict"),
    Release("f4fd24e153b613b8", "v9", "0.7.0", "6e64ecc", "src/clccodec/shipped/clc-full.pt", "ca0562647bc4545b",
            "src/clccodec/shipped/default.clcdict"),
    Release("8beca0b9bccbac58", "v10", "0.8.0", "584d6b5", "src/clccodec/shipped/clc-full.pt", "fb136c1630258dba",
            "src/clccodec/shipped/default.clcdict"),
    Release("e037820b06cd2650", "v11", "0.9.0", "4911cdc", "src/clccodec/shipped/clc-full.pt", "d173ba74ec733b6a",
            "src/clccodec/shipped/default.clcdict"),
    Release("afc5d46539bdb97c", "v12", "0.10.0", "54f2f11", "src/clccodec/shipped/clc-full.pt", "0ffb0a586af1bbc9",
            "src/clccodec/shipped/default.clcdict"),
    Release("764bc4adcf4a8c48", "v13", "0.11.0", "181ad5e", "src/clccodec/shipped/clc-full.pt", "cbe9fb0f91634a07",
            "src/clccodec/shipped/default.clcdict"),
    Release("6f85fba1fdb1b9d3", "v14", "0.12.0", "8363e66", "src/clccodec/shipped/clc-full.pt", "64d88c41b7010083",
            "src/clccodec/shipped/default.clcdict"),
    Release("dcaf6f793fab6f6c", "v15", "0.13.0", "a938455", "src/clccodec/shipped/clc-full.pt", "757a39d9f9a03a50",
            "src/clccodec/shipped/default.clcdict"),
)


def find_release(model_id: bytes) -> Release | None:
    """The release whose model has this id (a full id or the 4-byte prefix a .clc file stores)."""
    for r in reversed(RELEASED_MODELS):
        full = bytes.fromhex(r.model_id)
        if full == model_id or file_id(full) == model_id:
            return r
    return None


def describe(model_id: bytes) -> str:
    """'weights v3 of clccodec 0.1.0' or 'not a released model'."""
    r = find_release(model_id)
    return f"weights {r.weights} of clccodec {r.version}" if r else "not a released model"


def describe_model_mismatch(needed: bytes, loaded: bytes, references: bool = False) -> str:
    """One line for a file whose model is not the loaded one: which release wrote it and how to decode it."""
    r = find_release(needed)
    have = f"the loaded model is {file_id(loaded).hex()} ({describe(loaded)})"
    if r is None:
        return (f"this file needs model {needed.hex()}, which is not a released model (weights you trained?), "
                f"but {have}: pass the weights that wrote it with --model (or $CLC_MODEL)")
    if r is RELEASED_MODELS[-1]:  # the weights this installation ships (test_release holds them equal)
        return (f"this file needs model {needed.hex()} (weights {r.weights} of clccodec {r.version}), but {have}; "
                "the shipped model wrote it: decode it without --model (and without $CLC_MODEL)"
                + (" and --dict" if references else ""))
    files = [(r.path, f"clc-{r.weights}.pt")] + ([(r.dictionary_path, f"clc-{r.weights}.clcdict")] if references else [])
    if r.commit:
        get = " && ".join(f"git show {r.commit}:{src} > {dst}" for src, dst in files) + " (in a clccodec checkout)"
    else:
        get = f"take {' and '.join(src for src, _ in files)} from the clccodec {r.version} release"
    use = f"--model clc-{r.weights}.pt" + (f" --dict clc-{r.weights}.clcdict" if references else "")
    return (f"this file needs model {needed.hex()} (weights {r.weights} of clccodec {r.version}), but {have}; "
            f"to decode it: {get}, then pass {use}")
