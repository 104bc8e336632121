"""Weights files and model ids.

A weights file is a `torch.save`d dict {"format", "config", "state", "meta"} (format 2 adds "grids").
Shipped files store the float path in fp16; convolution weights of the probability path are on their
fixed-point grid (k / 2^W_FRAC) and stored as the integers k in int16 (exact, half of float32: the file
shrinks from 34.6 to about 22 MB); its other parameters stay float32 (exact); the integer CDF tables are
stored rather than recomputed, so every machine codes with the same tables. The model id is a hash of the config and the loaded tensors: it is what a .clc file and a .clcdict
name, and it does not depend on how the file was written.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from ..io.files import write_atomic
from ..errors import ModelError
from ..format.ids import MODEL_ID_BYTES
from .network import CLCModel
from .config import ModelConfig
from .exact import QConv2d, quantize_exact_params
from .grids import W_FRAC
from .ptfile import READABLE_FORMATS, WEIGHTS_FORMAT

# small, and their exact values shape the coder (medians, gains, rate scales): not worth fp16's rounding
_KEEP_FP32 = ("entropy_bottleneck.", "entropy.gaussian.", "log_gain", "log_inv_gain", "log_scale_")


def model_id(model: CLCModel) -> bytes:
    h = hashlib.sha256(model.cfg.id_json().encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.digest()[:MODEL_ID_BYTES]


def _exact_param_names(model: nn.Module) -> set[str]:
    names = set()
    for mname, m in model.named_modules():
        if isinstance(m, QConv2d):
            names.update(f"{mname}.{p}" for p, _ in m.named_parameters(recurse=False))
    names.update({"clm.null_key", "clm.null_value"})
    return names


def _as_grid_integers(t: torch.Tensor) -> torch.Tensor | None:
    """t as int16 integers k with t = k / 2^W_FRAC, or None where t is not exactly on that grid in int16."""
    k = t.double() * 2**W_FRAC
    if not bool(torch.equal(k, torch.round(k))) or k.numel() == 0 or k.abs().max() > 2**15 - 1:
        return None
    return k.to(torch.int16)


def prepare_for_export(model: CLCModel) -> None:
    """Snap the probability path onto its grids and build the CDF tables (call once, before saving)."""
    quantize_exact_params(model)
    with torch.no_grad():
        model.clm.null_key.copy_(torch.round(model.clm.null_key * 256) / 256)
        model.clm.null_value.copy_(torch.round(model.clm.null_value * 256) / 256)
    model.update()


def save_weights(model: CLCModel, path: str | Path, meta: dict | None = None, half: bool = True) -> bytes:
    """Write a shipped weights file atomically; returns the model id of what a later load will see."""
    exact = _exact_param_names(model)
    state, grids = {}, {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if name in exact and name.endswith(".weight") and t.dtype == torch.float32:
            k = _as_grid_integers(t)
            if k is not None:
                t, grids[name] = k, W_FRAC
        elif half and t.is_floating_point() and name not in exact and not name.startswith(_KEEP_FP32):
            t = t.half()
        state[name] = t
    blob = {"format": WEIGHTS_FORMAT, "config": model.cfg.to_dict(), "state": state, "grids": grids,
            "meta": meta or {}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_atomic(path, buf.getvalue(), force=True)
    return model_id(load_weights(path))


def model_from_state(cfg: ModelConfig, state: dict, grids: dict | None = None) -> CLCModel:
    """A model in eval mode from a state dict (fp16 tensors of a shipped file are widened to float32, int16
    grid integers divided back: both exactly)."""
    model = CLCModel(cfg)
    model.load_state_dict(state)  # copy_ widens fp16 and int16 into the float32 tensors in place, exactly
    params = dict(model.named_parameters()) | dict(model.named_buffers())
    with torch.no_grad():
        for k, frac in (grids or {}).items():
            params[k].div_(2**frac)  # a power of two: exact
    return model.eval()


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> CLCModel:
    """Load a weights file; the model gets `.model_id` and `.meta` attributes."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"model weights not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise ModelError(f"cannot read model weights {path}: {e.__class__.__name__}") from None
    if not isinstance(blob, dict) or blob.get("format") not in READABLE_FORMATS:
        raise ModelError(f"{path} is not a clccodec weights file")
    try:
        model = model_from_state(ModelConfig.from_dict(blob["config"]), blob["state"], blob.get("grids"))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"weights file {path} does not match its config: {e}") from None
    model.model_id = model_id(model)
    model.meta = blob.get("meta", {})
    return model.to(device)
