"""Retrieval features: spatial pyramid pooling over {1x1, 2x2, 4x4} of a feature map.

The default extractor pools the codec's own analysis latent y = g_a(x) (no downloaded weights needed, and the
trainer gets it for free); the paper's ResNet-50 extractor pools its last convolutional stage instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SPP_LEVELS = (1, 2, 4)


def spp(fmap: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, 2 * C * 21): average of the values and of their magnitudes on each pyramid cell.

    Means alone cancel on signed latents; the magnitude half keeps texture energy. (Adaptive pooling also
    defines every cell of maps smaller than 4x4: cells then overlap.)
    """
    fmap = fmap.float()
    parts = []
    for src in (fmap, fmap.abs()):
        for n in SPP_LEVELS:
            parts.append(F.adaptive_avg_pool2d(src, n).flatten(1))
    return torch.cat(parts, 1)
