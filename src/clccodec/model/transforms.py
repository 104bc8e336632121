"""Analysis/synthesis transforms (float; g_s runs exactly at coding time: synthesis.py) and the fixed-point
hyper-synthesis (probability path)."""

from __future__ import annotations

from compressai.layers import GDN
from torch import Tensor, nn

from .exact import q_act, qconv


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


def analysis(N: int, C: int) -> nn.Sequential:
    """g_a: image (3, H, W) -> latent (C, H/16, W/16)."""
    return nn.Sequential(
        _conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, C),
    )


def synthesis(N: int, C: int) -> nn.Sequential:
    """g_s: latent (C, h, w) -> image (3, 16h, 16w)."""
    return nn.Sequential(
        _deconv(C, N), GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
        _deconv(N, N), GDN(N, inverse=True), _deconv(N, 3),
    )


def hyper_analysis(C: int, hidden: int, Nz: int) -> nn.Sequential:
    """h_a: scaled latent -> hyper-latent z at 1/4 of the latent resolution (encoder only: float is fine)."""
    return nn.Sequential(
        _conv(C, hidden, 3, 1), nn.ReLU(inplace=True),
        _conv(hidden, hidden), nn.ReLU(inplace=True),
        _conv(hidden, Nz),
    )


class HyperSynthesis(nn.Module):
    """h_s on the fixed-point grid: z_hat -> hyper features F_h at latent resolution.

    Upsampling is a convolution to 4x channels followed by PixelShuffle (a pure permutation), so the whole
    network stays exact.
    """

    def __init__(self, Nz: int, hidden: int, feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            qconv(Nz, hidden), nn.ReLU(),
            qconv(hidden, 4 * hidden), nn.PixelShuffle(2), nn.ReLU(),
            qconv(hidden, 4 * hidden), nn.PixelShuffle(2), nn.ReLU(),
            qconv(hidden, feat),
        )

    def forward(self, z_hat: Tensor) -> Tensor:  # noqa: D102
        # z_hat = integer symbols + float medians: snap onto the grid before the first exact product
        return self.body(q_act(z_hat))
