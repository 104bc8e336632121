"""Distortion metrics on decoded 8-bit pixels: PSNR-RGB and MS-SSIM-RGB, as CompressAI reports them.

* PSNR: 10 log10(255^2 / MSE), the MSE over every pixel and all three RGB channels of the uint8 images
  (the decoded image is already rounded to 8 bits). Computed per image; a data set's PSNR is the mean of the
  per-image values (not the PSNR of the mean MSE). Identical images would give +inf: capped at PSNR_CAP dB so
  JSON stays valid.
* MS-SSIM: pytorch-msssim's `ms_ssim` on RGB with data_range 255 (5 scales, 11x11 Gaussian window, sigma 1.5,
  the standard weights), the per-channel values averaged. float32 like CompressAI (4x faster than float64 on
  CPU; the E[x^2] - E[x]^2 cancellation costs up to ~3e-5 absolute on flat 8-bit content). It needs the shorter side > 160 px (four 2x
  downsamplings of an 11-pixel window). Smaller images use as many scales as fit (the first k standard weights,
  renormalised to sum 1) and below 11 px single-scale SSIM with the largest odd window that fits; `ms_ssim`
  returns the number of scales used so reports can flag it.
"""

from __future__ import annotations

import math

import numpy as np
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads with the first MS-SSIM: PSNR (the torch-free encoder's targets) needs only numpy
    import torch

PSNR_CAP = 100.0
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("metrics take uint8 images")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    _check(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (H, W, 3) or (H, W), peak 255."""
    m = mse(a, b)
    if m == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0 * 255.0 / m))


def scales_for(height: int, width: int, win_size: int = WIN_SIZE) -> int:
    """How many MS-SSIM scales (1..5) an image of this size supports (pytorch-msssim's own size rule)."""
    side = min(height, width)
    k = len(MSSSIM_WEIGHTS)
    while k > 1 and not side > (win_size - 1) * 2 ** (k - 1):
        k -= 1
    return k


def _to_nchw(a: np.ndarray) -> torch.Tensor:
    import torch

    t = torch.tensor(a, dtype=torch.float32)  # a copy (inputs may be read-only); float32 as CompressAI uses
    if t.ndim == 2:
        t = t[:, :, None]
    return t.permute(2, 0, 1).unsqueeze(0)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """MS-SSIM (0..1) between two uint8 RGB images and the number of scales it used (5 = standard)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check(a, b)
    x, y = _to_nchw(a), _to_nchw(b)
    h, w = a.shape[:2]
    k = scales_for(h, w)
    with torch.no_grad():
        if k == len(MSSSIM_WEIGHTS):
            return float(_ms_ssim(x, y, data_range=255, size_average=True)), k
        return _ms_ssim_reduced(x, y, k), k


def _gaussian_window(size: int, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian (1, 1, size), float32: the window pytorch-msssim uses."""
    import torch

    coords = torch.arange(size, dtype=torch.float) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).view(1, 1, -1)


def _blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable valid-mode Gaussian blur of every channel (rows, then columns)."""
    import torch.nn.functional as F

    c = x.shape[1]
    x = F.conv2d(x, win.view(1, 1, 1, -1).transpose(2, 3).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, win.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, data_range: float = 255.0,
                 k: tuple[float, float] = (0.01, 0.03)) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel SSIM and contrast-structure terms (N, C), the standard definitions (alpha = beta = gamma = 1)."""
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mu1, mu2 = _blur(x, win), _blur(y, win)
    mu1_sq, mu2_sq, mu12 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    s1 = _blur(x * x, win) - mu1_sq
    s2 = _blur(y * y, win) - mu2_sq
    s12 = _blur(x * y, win) - mu12
    cs_map = (2 * s12 + c2) / (s1 + s2 + c2)
    ssim_map = ((2 * mu12 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _ms_ssim_reduced(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """MS-SSIM over k < 5 scales for small images (the same per-scale terms as pytorch-msssim's ms_ssim)."""
    import torch
    import torch.nn.functional as F

    side = min(x.shape[-2:])
    win_size = WIN_SIZE if side >= WIN_SIZE else max(1, side - (1 - side % 2))  # largest odd size that fits
    win = _gaussian_window(win_size, 1.5).to(x.dtype)
    weights = torch.tensor(MSSSIM_WEIGHTS[:k], dtype=x.dtype)
    weights = weights / weights.sum()
    mcs = []
    for i in range(k):
        ssim_pc, cs = _ssim_and_cs(x, y, win)
        if i < k - 1:
            mcs.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
    return float(torch.prod(stack ** weights.view(-1, 1, 1), dim=0).mean())
