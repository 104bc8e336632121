"""The fixed-point grids of the probability path, as plain numbers (no torch): exact.py builds the torch layers
on them and lite.py the torch-free decoder, so both compute the same values from one definition."""

from __future__ import annotations

import math

A_FRAC = 8
A_MAX = 1024.0
W_FRAC = 12
W_MAX = 8.0
B_FRAC = 16  # a sub-grid of the product grid 2^-(A_FRAC+W_FRAC); 2^23 levels stay exact in float32
B_MAX = 128.0

# round(65536 * 2**(-k/8)) for k = 0..7; the softmax table is these mantissas shifted right by i // 8.
_EXP2_MANTISSA = (65536, 60097, 55109, 50535, 46341, 42495, 38968, 35734)
LUT_STEPS_PER_OCTAVE = 8
LUT_SIZE = 128  # 2^-16 of the peak weight: beyond it a token's weight is 0
EXP2_LUT = tuple(_EXP2_MANTISSA[i % 8] >> (i // 8) for i in range(LUT_SIZE))

# Dictionary values are int8 on a 2^-4 grid (value = k / 16, |k| <= 127): 1 byte per channel and token.
VALUE_FRAC = 4
VALUE_SCALE = float(2**VALUE_FRAC)
VALUE_MAX = 127 / VALUE_SCALE


def log2_on_lut_grid(n: int) -> float:
    """round(LUT_STEPS_PER_OCTAVE * log2(n)) / LUT_STEPS_PER_OCTAVE for an integer n >= 1, in integer arithmetic
    (no device's log is involved; never a tie: n^16 is never an odd power of two)."""
    assert LUT_STEPS_PER_OCTAVE == 8  # k = round(8 log2 n) <=> 2^(2k-1) < n^16 < 2^(2k+1)
    m = (n**16).bit_length() - 1  # 2^m <= n^16 < 2^(m+1)
    return ((m + 1) // 2) / LUT_STEPS_PER_OCTAVE


def attention_logit_scale(attn_dim: int) -> float:
    """The CLM's logit scale: a power of two close to 1/sqrt(d), so the (log2-unit) logits stay exact."""
    return 2.0 ** -round(math.log2(math.sqrt(attn_dim)))
