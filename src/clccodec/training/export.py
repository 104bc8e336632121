"""Turn a training checkpoint into a shipped weights file (fixed-point grids snapped, CDF tables built)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model.config import ModelConfig
from ..model.weights import model_from_state, prepare_for_export, save_weights


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = True) -> bytes:
    """Checkpoint (last.pt/best.pt of the trainer) -> weights file; returns the model id. A last.pt of a run with
    an EMA exports the averaged weights, as best.pt holds them: the weights that were validated."""
    st = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = st["model"] | (st.get("ema") or {})
    model = model_from_state(ModelConfig.from_dict(st["model_cfg"]), state)
    prepare_for_export(model)
    meta = {"step": st["step"], "train_cfg": st.get("train_cfg", {}), "checkpoint": Path(checkpoint).name}
    return save_weights(model, output, meta=meta, half=half)
