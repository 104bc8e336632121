"""Analysis/synthesis transforms (float in training; at coding time g_s runs as synthesis.py's fast float32 or
exact network) and the fixed-point hyper-synthesis (probability path), built from model/layout.py's lists."""

from __future__ import annotations

from compressai.layers import GDN
from torch import Tensor, nn

from . import layout
from .config import ModelConfig
from .exact import q_act, qconv
from .layout import Layer


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


def analysis(N: int, C: int) -> nn.Sequential:
    """g_a: image (3, H, W) -> latent (C, H/16, W/16)."""
    return nn.Sequential(
        _conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, C),
    )


def torch_layer(layer: Layer) -> nn.Module:
    """The torch module of one layer of model/layout.py."""
    if layer.kind == "conv":
        return qconv(layer.cin, layer.cout, layer.k)
    if layer.kind == "deconv":
        return _deconv(layer.cin, layer.cout, layer.k)
    if layer.kind == "igdn":
        return GDN(layer.cin, inverse=True)
    return {"relu": nn.ReLU, "shuffle": lambda: nn.PixelShuffle(2)}[layer.kind]()


def synthesis(cfg: ModelConfig) -> nn.Sequential:
    """g_s: latent (C, h, w) -> image (3, 16h, 16w) (layout.synthesis)."""
    return nn.Sequential(*map(torch_layer, layout.synthesis(cfg)))


def hyper_analysis(C: int, hidden: int, Nz: int) -> nn.Sequential:
    """h_a: scaled latent -> hyper-latent z at 1/4 of the latent resolution (encoder only: float is fine)."""
    return nn.Sequential(
        _conv(C, hidden, 3, 1), nn.ReLU(inplace=True),
        _conv(hidden, hidden), nn.ReLU(inplace=True),
        _conv(hidden, Nz),
    )


class HyperSynthesis(nn.Module):
    """h_s on the fixed-point grid: z_hat -> hyper features F_h at latent resolution (layout.hyper_synthesis)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(*map(torch_layer, layout.hyper_synthesis(cfg)))

    def forward(self, z_hat: Tensor) -> Tensor:  # noqa: D102
        # z_hat = integer symbols + float medians: snap onto the grid before the first exact product
        return self.body(q_act(z_hat))
