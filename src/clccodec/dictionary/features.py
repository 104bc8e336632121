"""Retrieval features: spatial pyramid pooling over {1x1, 2x2, 4x4} of a feature map.

Two extractors, both named in the .clcdict so that encoding queries with the features the dictionary was built
with:

* ``latent`` (default, no download): SPP of the codec's own analysis latent y = g_a(x). The trainer retrieves
  its references with exactly these features (training/refbank.py), so training and deployment match.
* ``resnet50`` (the paper's): SPP of an ImageNet ResNet-50's last convolutional stage, with weights loaded from a
  local file (never downloaded).

Queries at encode time work on the feature map of the *whole* image (one forward pass per view) and pool it
globally (the default) or per crop-sized tile (see `query_features`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ..format.ids import EXTRACTOR_ID_BYTES
from .retrieval import SPP_LEVELS, query_size

EXTRACTORS = ("latent", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def spp(fmap: Tensor, signed: bool = True) -> Tensor:
    """(B, C, h, w) -> (B, 2 * C * 21): average of the values and of their magnitudes on each pyramid cell.

    Means alone cancel on signed latents; the magnitude half keeps texture energy. (Adaptive pooling also
    defines every cell of maps smaller than 4x4: cells then overlap.) For non-negative maps (after a ReLU) the
    magnitude half repeats the first, so `signed=False` gives (B, C * 21).
    """
    fmap = fmap.float()
    parts = []
    for src in (fmap, fmap.abs()) if signed else (fmap,):
        for n in SPP_LEVELS:
            parts.append(F.adaptive_avg_pool2d(src, n).flatten(1))
    return torch.cat(parts, 1)


def _fingerprint(named_tensors: list[tuple[str, Tensor]]) -> bytes:
    h = hashlib.sha256()
    for name, t in sorted(named_tensors, key=lambda kv: kv[0]):
        t = t.detach().cpu().float().contiguous()
        h.update(f"{name}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.digest()[:EXTRACTOR_ID_BYTES]


class FeatureExtractor:
    """Maps images (B, 3, H, W) in [0, 1] to a feature map; SPP of that map is the retrieval feature."""

    name: str
    stride: int  # pixels per feature-map cell
    signed: bool
    fingerprint: bytes  # identifies the weights (a dictionary refuses to be queried with other ones)

    def fmap(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        return spp(self.fmap(x), self.signed)

    def pool(self, fmap: Tensor) -> Tensor:
        return spp(fmap, self.signed)


class LatentExtractor(FeatureExtractor):
    """SPP of the codec's analysis latent y = g_a(x) (what the trainer retrieves with)."""

    name, stride, signed = "latent", 16, True

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.fingerprint = bytes(model.model_id[:EXTRACTOR_ID_BYTES])

    @torch.no_grad()
    def fmap(self, x: Tensor) -> Tensor:
        return self.model.analyse(x)  # (at coding time FastAnalysis: the encoder's own latent, same features)


class ResNet50Extractor(FeatureExtractor):
    """The paper's extractor: ResNet-50 up to layer4 (stride 32, 2048 channels), ImageNet-normalised input."""

    name, stride, signed = "resnet50", 32, False

    def __init__(self, weights: str | Path, device: torch.device | str = "cpu") -> None:
        import torchvision

        path = Path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise UsageError(f"ResNet-50 weights not found: {path}") from None
        except IsADirectoryError:
            raise UsageError(f"ResNet-50 weights: {path} is a directory") from None
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing problem
            raise UsageError(f"cannot read ResNet-50 weights {path}: {e.__class__.__name__}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise UsageError(f"{path} is not a ResNet-50 state dict (torch.save(model.state_dict(), path))")
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
        net = torchvision.models.resnet50(weights=None)
        net.fc = nn.Identity()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else "shape/key mismatch"
            raise UsageError(f"{path} does not hold torchvision ResNet-50 weights ({first})") from None
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                  net.layer4).to(device).eval()
        self.fingerprint = _fingerprint(list(self.body.state_dict().items()))
        self.device = torch.device(device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def fmap(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        return self.body((x - self._mean) / self._std)


def make_extractor(name: str, model: nn.Module, weights: str | Path | None = None,
                   device: torch.device | str = "cpu") -> FeatureExtractor:
    if name == "latent":
        return LatentExtractor(model)
    if name == "resnet50":
        if weights is None:
            raise UsageError("--features resnet50 needs --weights PATH (a local torchvision ResNet-50 state dict; "
                             "nothing is downloaded)")
        return ResNet50Extractor(weights, device)
    raise UsageError(f"unknown feature extractor '{name}' (use {' or '.join(EXTRACTORS)})")


# -- queries over a whole image ------------------------------------------------------------------------------------

QUERY_MODES = ("global", "tiles", "tiles+global")


def _tile_starts(n: int, t: int) -> list[int]:
    """Non-overlapping tiles of size t covering a centred grid of a length-n axis (one tile if n <= t)."""
    if n <= t:
        return [0]
    count = n // t
    off = (n - count * t) // 2
    return [off + i * t for i in range(count)]


def tile_features(fmap: Tensor, tile: int, signed: bool) -> Tensor:
    """SPP of each crop-sized tile of a (1, C, h, w) feature map -> (T, F)."""
    _, _, h, w = fmap.shape
    tiles = [fmap[:, :, y : y + tile, x : x + tile] for y in _tile_starts(h, tile) for x in _tile_starts(w, tile)]
    if all(t.shape == tiles[0].shape for t in tiles):
        return spp(torch.cat(tiles, 0), signed)
    return torch.cat([spp(t, signed) for t in tiles], 0)




def query_view(x: Tensor) -> Tensor:
    """The image as the retrieval query sees it: itself, or (above about 4 MP) an area-downscaled copy."""
    size = query_size(*x.shape[-2:])
    return x if size == tuple(x.shape[-2:]) else F.interpolate(x, size=size, mode="area")


def query_features(extractor: FeatureExtractor, x: Tensor, crop: int, mode: str = "global",
                   rotate: bool = True, fmap: Tensor | None = None) -> list[np.ndarray]:
    """Query feature sets for an image (1, 3, H, W): one (n, F) array per view (the image, its 180° rotation).

    global: SPP of the whole feature map; tiles: SPP of each crop-sized tile (the scale dictionary keys were
    made at); tiles+global: both. `fmap`: the extractor's map of x itself, if the caller has it (used when the
    query sees x unscaled).
    """
    if mode not in QUERY_MODES:
        raise ValueError(f"unknown query mode {mode!r}")
    view = query_view(x)
    known = fmap if fmap is not None and view is x else None
    views = [view, torch.rot90(view, 2, (2, 3))] if rotate else [view]
    tile = max(1, crop // extractor.stride)
    out = []
    for i, v in enumerate(views):
        fm = known if i == 0 and known is not None else extractor.fmap(v)
        parts = []
        if mode in ("tiles", "tiles+global"):
            parts.append(tile_features(fm, tile, extractor.signed))
        if mode in ("global", "tiles+global"):
            parts.append(extractor.pool(fm))
        out.append(torch.cat(parts, 0).cpu().numpy())
    return out
