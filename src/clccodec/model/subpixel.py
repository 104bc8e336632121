"""A 5x5 stride-2 transposed convolution (padding 2, output padding 1) as a 3x3 convolution to 4x channels
followed by pixel_shuffle(2): the same sums, in another order. oneDNN runs it faster when the transposed
convolution has few output channels (g_s's last layer: 3). The torch-free decoder (decoding/numpy_backend.py)
runs each output phase with only its own taps (`phase_kernels`: 25 of the 36 that the 3x3 form multiplies, the
rest being zeros). Plain numpy, so both use one definition."""

from __future__ import annotations

import numpy as np

# kernel row (column) feeding output phase a from input offset u - 1 (None: no tap)
TAPS = ((4, 2, 0), (None, 3, 1))
# the input offsets u (0..2) that feed phase a
PHASE_OFFSETS = tuple(tuple(u for u in range(3) if TAPS[a][u] is not None) for a in range(2))


def subpixel_kernel(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose2d weight (C_in, C_out, 5, 5) and bias (C_out,) -> Conv2d weight (4 C_out, C_in, 3, 3) and
    bias (4 C_out,); output channel 4 o + 2 a + b is output o's phase (a, b), as pixel_shuffle(2) expects."""
    c_in, c_out = weight.shape[:2]
    k = np.zeros((4 * c_out, c_in, 3, 3), dtype=weight.dtype)
    for a in range(2):
        for b in range(2):
            for u in range(3):
                for v in range(3):
                    if TAPS[a][u] is not None and TAPS[b][v] is not None:
                        k[2 * a + b :: 4, :, u, v] = weight[:, :, TAPS[a][u], TAPS[b][v]].T
    return k, np.repeat(bias, 4)


def phase_kernels(weight: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """ConvTranspose2d weight (C_in, C_out, 5, 5) -> for each output phase (a, b) the matrix (C_out, taps * C_in)
    of its taps, in the order (u, v, c) for u in PHASE_OFFSETS[a], v in PHASE_OFFSETS[b]: output o at (2 i + a,
    2 j + b) is that matrix times the input's values at (i + u - 1, j + v - 1)."""
    return {(a, b): np.stack([weight[:, :, TAPS[a][u], TAPS[b][v]].T for u in PHASE_OFFSETS[a]
                              for v in PHASE_OFFSETS[b]], 1).reshape(weight.shape[1], -1)
            for a in range(2) for b in range(2)}
