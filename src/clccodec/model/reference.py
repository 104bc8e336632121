"""Reference conditioning: compact dictionary values, the CLM (cross-attention + alignment) and CLS fusion.

The decoder never sees the input latent y, so the CLM's *query* comes from what it has already decoded: the
hyper features F_h (computed from z_hat) and, with `query_slices` > 0, the first slices of y_hat (F_h alone
carries no information about where a position's content is in a reference: benchmarks/attention_probe.py);
keys and values come from the M reference values fetched from the dictionary by the indices written in the
file. The CLM and its alignment live on the fixed-point probability path (see exact.py); the
CLS fusion only feeds the synthesis: it trains in float here, and at coding time runs as its exact fixed-point
twin (synthesis.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .exact import exp2_weights, make_lut, q_act, qconv, round_ste
from .grids import VALUE_MAX, VALUE_SCALE, attention_logit_scale, log2_on_lut_grid


class ValueProjection(nn.Module):
    """Learned projection of a reference latent y to the compact value stored in the dictionary."""

    def __init__(self, latent_channels: int, ref_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(latent_channels, ref_channels, 1)

    def forward(self, y: Tensor) -> Tensor:
        """Values on the int8 grid (straight-through in training)."""
        v = self.proj(y).clamp(-VALUE_MAX, VALUE_MAX)
        return round_ste(v * VALUE_SCALE) / VALUE_SCALE


def values_to_int8(values: Tensor) -> Tensor:
    return torch.round(values * VALUE_SCALE).to(torch.int8)


def int8_to_values(codes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    return codes.to(dtype) / VALUE_SCALE


def values_to_tokens(values: Tensor) -> Tensor:
    """(B, R, C, h, w) reference values -> (B, R*h*w, C) tokens (position-free: matching is by content)."""
    B, R, C, h, w = values.shape
    return values.permute(0, 1, 3, 4, 2).reshape(B, R * h * w, C)


class ReferenceAttention(nn.Module):
    """CLM: cross-attention from decoder-side queries to reference tokens, then a learned local alignment.

    A learned *null* token is always among the keys, so the module works with M = 0 (output = the null value)
    and can learn to ignore references that do not help; with `null_prior` its logit starts log2(T) up, as if
    it were T tokens (else T = M x 256 reference tokens outvote it and the output is mostly their average).
    Softmax weights come from an exact integer table.
    The alignment predicts, per position and channel group, softmax weights over the 3x3 neighbourhood of the
    attended features (a deformable-style resampling restricted to integer offsets, so it stays exact).
    """

    def __init__(self, feat: int, ref_channels: int, attn_dim: int, ref_out: int, groups: int,
                 null_prior: bool = False, query_extra: int = 0) -> None:
        super().__init__()
        self.ref_out, self.groups, self.null_prior = ref_out, groups, null_prior
        # F_h alone: 1x1; with decoded channels a 3x3 neighbourhood (it locates content better: attention_probe.py)
        self.query = qconv(feat + query_extra, attn_dim, 3 if query_extra else 1)
        self.key = qconv(ref_channels, attn_dim, 1)
        self.value = qconv(ref_channels, ref_out, 1)
        self.null_key = nn.Parameter(torch.zeros(attn_dim))
        self.null_value = nn.Parameter(torch.zeros(ref_out))
        self.logit_scale = attention_logit_scale(attn_dim)  # logits in log2 units
        self.align = qconv(feat + ref_out, groups * 9, 3)
        self.register_buffer("lut", make_lut(), persistent=False)

    def _attend(self, feat: Tensor, tokens: Tensor | None, chunk: int, decoded: Tensor | None = None) -> Tensor:
        B, _, h, w = feat.shape
        null_v = q_act(self.null_value).to(feat.dtype)
        if tokens is None or tokens.shape[1] == 0:
            # a single key gets all the weight: exactly the null value (what the general path computes too)
            return null_v.view(1, -1, 1, 1).expand(B, -1, h, w)
        null_k = q_act(self.null_key).to(feat.dtype)
        r = tokens.to(feat.dtype).transpose(1, 2).unsqueeze(-1)  # (B, C, T, 1)
        k = torch.cat([null_k.expand(B, 1, -1), self.key(r).squeeze(-1).transpose(1, 2)], 1)
        v = torch.cat([null_v.expand(B, 1, -1), self.value(r).squeeze(-1).transpose(1, 2)], 1)
        q = self.query(feat if decoded is None else torch.cat([feat, decoded.to(feat.dtype)], 1))
        q = q.flatten(2).transpose(1, 2)  # (B, hw, d)
        kt = k.transpose(1, 2)
        prior = None
        if self.null_prior:  # on the table's 1/8 grid: the logits stay exact
            prior = torch.zeros(k.shape[1], dtype=feat.dtype, device=feat.device)
            prior[0] = log2_on_lut_grid(tokens.shape[1])
        outs = []
        for s in range(0, q.shape[1], chunk):  # rows are independent: chunking bounds memory, not results
            logits = q[:, s : s + chunk] @ kt * self.logit_scale
            wts = exp2_weights(logits if prior is None else logits + prior, -1, self.lut)
            outs.append(q_act((wts @ v) / wts.sum(-1, keepdim=True)))
        return torch.cat(outs, 1).transpose(1, 2).reshape(B, self.ref_out, h, w)

    def match_loss(self, query_in: Tensor, own: Tensor) -> Tensor:
        """Contrastive loss that teaches the query and key to find content: every position's query (from
        query_in: F_h, and the decoded channels with query_extra) against the keys of all positions of the
        batch's own value tokens `own` (B, C_r, h, w); the right key is its own position's. The RD loss alone
        hardly trains them: near-uniform attention over T tokens gives each logit ~1/T of the gradient."""
        d = self.key.out_channels
        q = self.query(query_in).permute(0, 2, 3, 1).reshape(-1, d)
        k = self.key(own).permute(0, 2, 3, 1).reshape(-1, d)
        logits = (q @ k.T) * (self.logit_scale * math.log(2))  # the base-2 softmax's logits in natural units
        return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))

    def forward(self, feat: Tensor, tokens: Tensor | None, chunk: int = 4096, decoded: Tensor | None = None) -> Tensor:
        """feat (B, feat, h, w), tokens (B, T, C_r) and, with query_extra, the decoded channels the query also
        sees (B, query_extra, h, w) -> y_a (B, ref_out, h, w). Without tokens the query is not needed."""
        att = self._attend(feat, tokens, chunk, decoded)
        B, C, h, w = att.shape
        g = self.groups
        logits = self.align(torch.cat([feat, att], 1)).view(B, g, 1, 9, h, w)
        wts = exp2_weights(logits, 3, self.lut)
        nb = F.unfold(att, 3, padding=1).view(B, g, C // g, 9, h, w)
        aligned = (nb * wts).sum(3) / wts.sum(3)
        return q_act(aligned.reshape(B, C, h, w))


class ReferenceFusion(nn.Module):
    """CLS: y_hat + alpha * P(y_a), alpha = sigmoid(F_w([y_hat, y_a])), alpha = 0.5 at initialisation."""

    def __init__(self, latent_channels: int, ref_out: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(latent_channels + ref_out, latent_channels, 3, padding=1)
        self.proj = nn.Conv2d(ref_out, latent_channels, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, y_hat: Tensor, y_a: Tensor) -> Tensor:  # noqa: D102
        alpha = torch.sigmoid(self.gate(torch.cat([y_hat, y_a], 1)))
        return y_hat + alpha * self.proj(y_a)
