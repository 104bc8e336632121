"""Model configurations: the tiny one for fast tests and the full one the shipped weights use."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

PAD_MULTIPLE = 64  # images are padded to this: g_a downsamples by 16 and h_a by another 4

# Keys renamed since weights format 1: read under either name; model ids hash the format-1 names, so renaming a
# field never changes an id (and never orphans a file).
LEGACY_KEYS = {"M": "latent_channels"}
# Fields added since: absent from older weights files, and hashed only when they differ from this value (so the
# ids of older models do not change)
ADDED_FIELDS = {"null_prior": False, "query_slices": 0, "rate_scales": False, "param_layers": 3}


@dataclass(frozen=True)
class ModelConfig:
    """Every size that shapes the network. Stored in the weights file; part of the model id."""

    name: str
    N: int  # channels of the analysis/synthesis transforms
    latent_channels: int  # channels of the latent y (sum of `slices`); "M" in weights format 1
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
    # the CLM's null key gets + log2(T) on its logit with T reference tokens: it starts with the prior weight of
    # all of them together, instead of being outvoted 1 : T (then references cost bits: docs/references.md)
    null_prior: bool = False
    # the CLM runs after this many slices are decoded and its query sees them as well as F_h (F_h alone cannot
    # locate a position's content in a reference); those first slices are coded without references
    query_slices: int = 0
    # a learned per-quality scale on the channels after every GDN of g_a and g_s (interpolated like the gains;
    # starting at 1): the transforms adapt to the rate instead of one pair serving every rate
    rate_scales: bool = False
    # convolutions in each slice's entropy-parameter network (model/layout.py), the last one 1x1
    param_layers: int = 3

    @property
    def query_channels(self) -> int:
        """Decoded latent channels the CLM's query sees."""
        return sum(self.slices[: self.query_slices])

    def __post_init__(self) -> None:
        if sum(self.slices) != self.latent_channels:
            raise ValueError(f"slices {self.slices} do not sum to latent_channels={self.latent_channels}")
        if self.ref_out % self.align_groups:
            raise ValueError("ref_out must be divisible by align_groups")
        if self.param_layers < 2:
            raise ValueError("param_layers must be at least 2")
        if not 0 <= self.query_slices < len(self.slices):
            raise ValueError(f"query_slices must be in [0, {len(self.slices) - 1}]")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["slices"] = list(self.slices)
        return d

    def id_json(self) -> str:
        """The config as the model id hashes it: sorted JSON with the format-1 key names."""
        renamed = {new: old for old, new in LEGACY_KEYS.items()}
        return json.dumps({renamed.get(k, k): v for k, v in self.to_dict().items()
                           if not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = {LEGACY_KEYS.get(k, k): v for k, v in d.items()}
        d["slices"] = tuple(d["slices"])
        return cls(**d)


TINY = ModelConfig(
    name="tiny", N=16, latent_channels=24, Nz=16, hyper=16, feat=24, ref_channels=8, attn_dim=8, ref_out=8,
    align_groups=2, param_hidden=16, slices=(8, 16),
)

FULL = ModelConfig(
    name="full", N=128, latent_channels=192, Nz=128, hyper=128, feat=192, ref_channels=32, attn_dim=64, ref_out=64,
    align_groups=4, param_hidden=128, slices=(16, 16, 32, 64, 64),
)

CONFIGS = {c.name: c for c in (TINY, FULL)}
