"""Turn a training checkpoint into a shipped weights file (fixed-point grids snapped, CDF tables built)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model.codec import CLCModel
from ..model.config import ModelConfig
from ..model.weights import prepare_for_export, resize_coder_buffers, save_weights


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = True) -> bytes:
    """Checkpoint (last.pt/best.pt of the trainer) -> weights file; returns the model id."""
    st = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = CLCModel(ModelConfig.from_dict(st["model_cfg"]))
    resize_coder_buffers(model, st["model"])
    model.load_state_dict(st["model"])
    model.eval()
    prepare_for_export(model)
    meta = {"step": st["step"], "train_cfg": st.get("train_cfg", {}), "checkpoint": Path(checkpoint).name}
    return save_weights(model, output, meta=meta, half=half)
