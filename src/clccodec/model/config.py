"""Model configurations: the tiny one for fast tests and the full one the shipped weights use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# CompressAI's MSE quality ladder (bmshj2018 / mbt2018 / cheng2020 presets 1..8). Integer --quality q trains
# against LAMBDAS[q - 1]; fractional qualities interpolate log-linearly between neighbours.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
QUALITY_MIN = 1.0
QUALITY_MAX = float(len(LAMBDAS))


@dataclass(frozen=True)
class ModelConfig:
    """Every size that shapes the network. Stored in the weights file; part of the model id."""

    name: str
    N: int  # channels of the analysis/synthesis transforms
    M: int  # latent channels (sum of `slices`)
    Nz: int  # hyper-latent channels
    hyper: int  # hidden channels of the hyper transforms
    feat: int  # channels of the decoder-side hyper features F_h (query source, entropy-parameter input)
    ref_channels: int  # channels of a dictionary reference value (stored int8)
    attn_dim: int  # CLM query/key width
    ref_out: int  # channels of the CLM output y_a
    align_groups: int  # channel groups of the alignment's dynamic 3x3 filter
    param_hidden: int  # hidden channels of the slice entropy-parameter networks
    slices: tuple[int, ...] = field(default_factory=tuple)
    scale_levels: int = 64  # Gaussian scale table size (CompressAI's default table)

    def __post_init__(self) -> None:
        if sum(self.slices) != self.M:
            raise ValueError(f"slices {self.slices} do not sum to M={self.M}")
        if self.ref_out % self.align_groups:
            raise ValueError("ref_out must be divisible by align_groups")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["slices"] = list(self.slices)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["slices"] = tuple(d["slices"])
        return cls(**d)


TINY = ModelConfig(
    name="tiny", N=16, M=24, Nz=16, hyper=16, feat=24, ref_channels=8, attn_dim=8, ref_out=8,
    align_groups=2, param_hidden=16, slices=(8, 16),
)

FULL = ModelConfig(
    name="full", N=128, M=192, Nz=128, hyper=128, feat=192, ref_channels=32, attn_dim=64, ref_out=64,
    align_groups=4, param_hidden=128, slices=(16, 16, 32, 64, 64),
)

CONFIGS = {c.name: c for c in (TINY, FULL)}
