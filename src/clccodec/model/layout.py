"""The layer sequences of the networks a decoder runs, in one place and without torch.

The torch modules are built from these lists (transforms.py, entropy.py: module i of a Sequential is layer i
here, so its weights are named `<net>.<i>.weight`), and the numpy backend (decode/numpy_backend.py) runs the
same lists, finding each layer's weights under those names. A layer added, removed or reordered here changes
both decoders alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Layer:
    kind: str  # "conv" (fixed point, stride 1, 'same'), "relu", "shuffle" (pixel shuffle x2), "deconv" (x2), "igdn"
    cin: int = 0
    cout: int = 0
    k: int = 3

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "deconv", "igdn")


RELU, SHUFFLE = Layer("relu"), Layer("shuffle")


def hyper_synthesis(cfg: ModelConfig) -> list[Layer]:
    """h_s: z_hat -> F_h at 4x its resolution; upsampling is a convolution to 4x channels and a pixel shuffle
    (a pure permutation), so the whole network stays exact."""
    h = cfg.hyper
    return [Layer("conv", cfg.Nz, h), RELU,
            Layer("conv", h, 4 * h), SHUFFLE, RELU,
            Layer("conv", h, 4 * h), SHUFFLE, RELU,
            Layer("conv", h, cfg.feat)]


def slice_parameters(cfg: ModelConfig, cin: int, s: int) -> list[Layer]:
    """A slice's entropy-parameter network: context (cin channels) -> mean and scale index of its s channels;
    `param_layers` convolutions, the last one 1x1."""
    P = cfg.param_hidden
    hidden = [Layer("conv", cin, P), RELU]
    for _ in range(cfg.param_layers - 2):
        hidden += [Layer("conv", P, P), RELU]
    return hidden + [Layer("conv", P, 2 * s, 1)]


def slice_residual(cfg: ModelConfig, cin: int, s: int) -> list[Layer]:
    """A slice's latent residual prediction: context and the decoded slice -> its residual."""
    return [Layer("conv", cin, cfg.param_hidden), RELU, Layer("conv", cfg.param_hidden, s, 1)]


def synthesis(cfg: ModelConfig) -> list[Layer]:
    """g_s: latent (C, h, w) -> image (3, 16 h, 16 w)."""
    N, C = cfg.N, cfg.latent_channels
    return [Layer("deconv", C, N, 5), Layer("igdn", N, N), Layer("deconv", N, N, 5), Layer("igdn", N, N),
            Layer("deconv", N, N, 5), Layer("igdn", N, N), Layer("deconv", N, 3, 5)]


def radius(layers: list[Layer]) -> int:
    """How many rows of context a network's output row depends on each way (the halo of its bands)."""
    return sum(layer.k // 2 for layer in layers if layer.kind == "conv")
