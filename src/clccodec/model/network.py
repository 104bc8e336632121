"""The CLC model: one network for every rate, conditioned on dictionary references.

    x --g_a--> y --*gain(q)--> y_s --h_a--> z --EB--> z_hat --h_s--> F_h
    reference codes (int8 dictionary values, fetched by index) + F_h (+ first query_slices of y_hat_s) --CLM--> y_a
    slices of y_s coded with (mu, scale) from [F_h, y_a, earlier slices] (+ LRP)  -> y_hat_s
    y_hat = y_hat_s * inv_gain(q) --CLS(y_a)--> g_s --> x_hat

Quality q is continuous in [1, 8] (quality.py): per-channel gains (Cui et al., "asymmetric gained" coding)
interpolated log-linearly between 8 learned levels, trained against the matching lambda; with `rate_scales` the
channels after every GDN of g_a and g_s are scaled per quality the same way, so the transforms adapt to the rate
(the dictionary and the references use the plain g_a). At coding time the
probability path (h_s, CLM, slice networks) always runs in exact fixed point (exact.py), so every machine decodes
the same symbols; the decoder's pixel path (inverse gains, CLS fusion, g_s: synthesis.py) runs by default as the
fast float32 network and, with `exact`, as its fixed-point twin (the same pixels everywhere). The encoder's
analysis (g_a, h_a) runs in plain float; the decoder never runs it. Training runs every part in float32 (the
exact parts with fake quantisation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from torch import Tensor, nn

from .quality import LAMBDAS, interpolate_log_table
from .rans import EntropyStrings, padded
from .bands import SYNTHESIS_HALO, analysis_band, latent_band, map_bands, synthesis_band
from .config import PAD_MULTIPLE, ModelConfig
from .entropy import Late, SliceEntropyModel, rounded
from .entropy import scale_table as gaussian_scale_table
from .exact import exact_mode, round_ste
from .reference import (
    ReferenceAttention,
    ReferenceFusion,
    ValueProjection,
    int8_to_values,
    values_to_tokens,
)
from .analysis import FastAnalysis
from .synthesis import ExactSynthesis, FastSynthesis
from .transforms import HyperSynthesis, analysis, hyper_analysis, synthesis

WARM_START_FIELDS = {"null_prior", "query_slices", "rate_scales"}  # config fields CLCModel.reconfigured can change
_CODER_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


class CLCModel(nn.Module):
    """The model. Like CompressAI's CompressionModel it has aux_loss(), update() and a load_state_dict() that
    sizes the CDF buffers first; it does not derive from it because importing compressai.models imports the
    whole model zoo, its latent codecs and, through their registry, torch_geometric (seconds at every start)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.latent_channels
        self.g_a = analysis(cfg.N, C)
        self.g_s = synthesis(cfg)
        self.h_a = hyper_analysis(C, cfg.hyper, cfg.Nz)
        self.h_s = HyperSynthesis(cfg)
        self.entropy_bottleneck = EntropyBottleneck(cfg.Nz)
        self.value_proj = ValueProjection(C, cfg.ref_channels)
        self.clm = ReferenceAttention(cfg.feat, cfg.ref_channels, cfg.attn_dim, cfg.ref_out, cfg.align_groups,
                                      cfg.null_prior, cfg.query_channels)
        self.entropy = SliceEntropyModel(cfg)
        self.fusion = ReferenceFusion(C, cfg.ref_out)
        # log-gains per quality level; MSE-optimal step sizes scale like lambda^-1/2, so start there
        ll = torch.log(torch.tensor(LAMBDAS))
        init = (0.5 * (ll - ll.mean())).unsqueeze(1).repeat(1, C)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        if cfg.rate_scales:  # log-scales per quality level, 3 GDN outputs of N channels in each transform
            self.log_scale_a = nn.Parameter(torch.zeros(len(LAMBDAS), 3 * cfg.N))
            self.log_scale_s = nn.Parameter(torch.zeros(len(LAMBDAS), 3 * cfg.N))

    @staticmethod
    def latent_shape(height: int, width: int) -> tuple[int, int]:
        """Rows and columns of the hyper-latent z of an image of this size (after padding to PAD_MULTIPLE)."""
        return math.ceil(height / PAD_MULTIPLE), math.ceil(width / PAD_MULTIPLE)

    # -- rate control ------------------------------------------------------------------------------------------

    def gains(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample quality (B,) -> (gain, inverse gain), each (B, latent channels, 1, 1)."""
        return (interpolate_log_table(self.log_gain, q)[:, :, None, None],
                interpolate_log_table(self.log_inv_gain, q)[:, :, None, None])

    def _scaled(self, net: nn.Sequential, x: Tensor, log_scale: Tensor | None, q: Tensor) -> Tensor:
        """net(x) with each GDN's output channels scaled by exp(log_scale) at quality q (rate_scales)."""
        if log_scale is None:
            return net(x)
        s = interpolate_log_table(log_scale, q)[:, :, None, None]
        k = 0
        for layer in net:
            x = layer(x)
            if isinstance(layer, GDN):
                x = x * s[:, k : k + layer.beta.numel()].to(x.dtype)
                k += layer.beta.numel()
        return x

    # -- pieces ----------------------------------------------------------------------------------------------

    def reference_values(self, x_ref: Tensor) -> Tensor:
        """Reference crops (B, 3, H, W) in [0, 1] -> dictionary values (B, C_r, H/16, W/16) on the int8 grid."""
        return self.value_proj(self.g_a(x_ref))

    def _decoder_context(self, z_hat: Tensor, tokens: Tensor | None) -> tuple[Tensor, Tensor, Late | None]:
        """F_h, the reference features y_a the first slices see and, when the CLM's query waits for decoded
        slices (query_slices), the function that computes the y_a of the later ones from them."""
        band = latent_band(4 * z_hat.shape[-1])
        feat = map_bands(self.h_s, z_hat, band // 4, halo=3, up=4)  # radius < 2 z rows
        if self.cfg.query_slices and tokens is not None:
            early = map_bands(lambda f: self.clm(f, None), feat, band, halo=2)  # no references yet
            # radius 2: the 3x3 query, then the alignment's 3x3
            return feat, early, lambda decoded: map_bands(lambda f, d: self.clm(f, tokens, decoded=d),
                                                          [feat, decoded], band, halo=2)
        y_a = map_bands(lambda f: self.clm(f, tokens), feat, band, halo=2)  # alignment: radius 1
        return feat, y_a, None

    def _rate_scales(self, which: str) -> Tensor | None:
        """log_scale_a or log_scale_s (levels, 3 N) of a model with rate_scales; None without them."""
        return getattr(self, f"log_scale_{which}") if self.cfg.rate_scales else None

    def analyse(self, x: Tensor, quality: float | None = None) -> Tensor:
        """The latent y = g_a(x) of a padded image (1, 3, H, W), band by band (bands.PIXEL_BAND).

        `quality`: the latent that quality codes (with rate_scales, g_a's channels are scaled for it); None: the
        plain g_a, the one the dictionary and the references use (the same latent without rate_scales). With
        gradients off (coding) it runs FastAnalysis, the same network in channels_last float32."""
        log_scale = self._rate_scales("a") if quality is not None else None
        q = torch.tensor([float(quality or 0.0)], device=x.device)
        if torch.is_grad_enabled():
            def g_a(t: Tensor) -> Tensor:
                return self._scaled(self.g_a, t, log_scale, q)
        else:
            fast = self._coding_net(FastAnalysis, x.device)
            gdns = fast.at_quality(None if log_scale is None else interpolate_log_table(log_scale.detach(), q)[0])

            def g_a(t: Tensor) -> Tensor:
                return fast(t, gdns)
        return map_bands(g_a, x, analysis_band(x.shape[-1]), halo=64, down=16)

    def _hyper_analyse(self, y_s: Tensor) -> Tensor:
        """The hyper-latent z of the scaled latent, band by band."""
        return map_bands(self.h_a, y_s, latent_band(y_s.shape[-1]), halo=8, down=4)  # radius 7 latent rows

    def _synthesize(self, y_hat_s: Tensor, y_a: Tensor, inv_gain: Tensor, q: Tensor) -> Tensor:
        """The float synthesis (training) at qualities q (B,)."""
        return self._scaled(self.g_s, self.fusion(y_hat_s.float() * inv_gain, y_a.float()), self._rate_scales("s"), q)

    def _coding_net(self, kind: type, device: torch.device):
        """The coding-time network of this kind (FastAnalysis, ExactSynthesis or FastSynthesis), built once per
        device and rebuilt when the parameters it copies change."""
        if kind is FastAnalysis:
            params, args = tuple(self.g_a.parameters()), (self.g_a,)
        else:
            log_scale = self._rate_scales("s")
            params = (*self.fusion.parameters(), *self.g_s.parameters(), self.log_inv_gain,
                      *([] if log_scale is None else [log_scale]))
            args = (self.fusion, self.g_s, self.log_inv_gain, log_scale)
        key = (kind, device, tuple(p._version for p in params))
        cache = self.__dict__.setdefault("_coding_nets", {})  # not a buffer: never saved, never moved
        if cache.get(kind, (None,))[0] != key:
            cache[kind] = (key, kind(*args, device))
        return cache[kind][1]

    def _reconstruct(self, y_hat_s: Tensor, y_a: Tensor, quality: float, exact: bool) -> Tensor:
        """Coding-time synthesis in [0, 1], band by band: the exact float64 twin of _synthesize (synthesis.py:
        the same pixels on every device) or the fast float32 network (within a pixel's last bit or two of it)."""
        device = y_hat_s.device
        synthesis = self._coding_net(ExactSynthesis if exact else FastSynthesis, device)
        params = synthesis.at_quality(quality)
        band = synthesis_band(y_hat_s.shape[-1], exact)
        with exact_mode(device) if exact else contextlib.nullcontext():
            return map_bands(lambda y, a: synthesis(y, a, params), [y_hat_s, y_a], band, SYNTHESIS_HALO, up=16)

    def _z_medians(self) -> Tensor:
        return self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)

    # -- training ----------------------------------------------------------------------------------------------

    def forward(self, x: Tensor, q: Tensor,
                ref_values: Tensor | Callable[[Tensor], Tensor | None] | None = None, hard_rate: bool = False) -> dict:
        """x (B, 3, H, W) in [0, 1], q (B,), ref_values (B, R, C_r, h, w) float reference values, or None.

        `ref_values` may also be a function of y (the trainer retrieves with y's own features, inside forward so
        that DDP sees every use of the parameters). `hard_rate`: y's likelihoods are those of the rounded latent
        (the rate the coder spends; straight-through gradient) instead of under additive noise. Returns x_hat,
        likelihoods of y and z, and y itself.
        """
        gain, inv_gain = self.gains(q)
        y = self._scaled(self.g_a, x, self._rate_scales("a"), q)
        values = ref_values(y) if callable(ref_values) else ref_values
        y_s = y * gain
        z = self.h_a(y_s)
        _, z_lik = self.entropy_bottleneck(z)
        med = self._z_medians()
        z_hat = round_ste(z - med) + med
        tokens = values_to_tokens(values) if values is not None and values.shape[1] else None
        # the probability path trains in float32 even under autocast: its fake quantisation needs the precision
        with torch.autocast(x.device.type, enabled=False):
            feat, y_a, late = self._decoder_context(z_hat.float(), tokens)
            y_hat_s, y_lik, y_a = self.entropy(y_s.float(), feat, y_a, late, relax=rounded if hard_rate else None)
        x_hat = self._synthesize(y_hat_s, y_a, inv_gain, q)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "y": y, "feat": feat, "y_hat_s": y_hat_s}

    def match_loss(self, out: dict) -> Tensor:
        """The CLM's contrastive matching loss (ReferenceAttention.match_loss) on a forward pass's output: the
        query sees what a decoder would (F_h and the first query_slices slices), the keys the batch's own
        value tokens. Only the query and key learn from it."""
        k = self.cfg.query_channels
        query_in = torch.cat([out["feat"], out["y_hat_s"][:, :k].float()], 1) if k else out["feat"]
        with torch.no_grad():
            own = self.value_proj(out["y"].float())
        return self.clm.match_loss(query_in.detach(), own)

    def reconfigured(self, **changes) -> "CLCModel":
        """A copy whose config differs in fields that warm-start from these weights: `null_prior` (adds no
        parameter) and `query_slices` from 0 (the query's new inputs start at zero weight and its 1x1 kernel
        becomes the centre of the 3x3 one, so it computes what it did; only the first slices change: they no
        longer see references)."""
        if set(changes) - WARM_START_FIELDS:
            raise ValueError(f"cannot change {sorted(set(changes) - WARM_START_FIELDS)} of trained weights")
        cfg = dataclasses.replace(self.cfg, **changes)
        state = self.state_dict()
        new = CLCModel(cfg)
        if cfg.query_slices != self.cfg.query_slices:
            if self.cfg.query_slices:
                raise ValueError("query_slices can only be set on weights trained without it")
            old = state["clm.query.weight"]
            w = torch.zeros_like(new.clm.query.weight)
            w[:, : old.shape[1], 1, 1] = old[:, :, 0, 0]
            state["clm.query.weight"] = w
        for name, t in new.state_dict().items():  # parameters the change adds start where new() put them
            state.setdefault(name, t)
        new.load_state_dict(state)
        return new.train(self.training)

    def aux_loss(self) -> Tensor:
        """The entropy bottleneck's quantile loss (its own optimiser trains the CDF range)."""
        return self.entropy_bottleneck.loss()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: D102
        # CompressAI's CDF buffers are sized by update(): give them the stored shapes first (empty in a fresh
        # model, but also when resuming into a model built from other weights)
        for name, t in state_dict.items():
            if name.endswith(_CODER_BUFFERS):
                module, _, buf = name.rpartition(".")
                try:
                    sub = self.get_submodule(module)
                except AttributeError:  # not a key of this model: super() reports it
                    continue
                cur = getattr(sub, buf)
                if isinstance(sub, (EntropyBottleneck, GaussianConditional)) and cur.shape != t.shape:
                    # a new tensor, not resize_(): buffers loaded from a file have storage that cannot grow
                    setattr(sub, buf, torch.empty(t.shape, dtype=cur.dtype, device=cur.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- coding ------------------------------------------------------------------------------------------------

    def update(self) -> None:
        """Build the integer CDF tables (once, at export: they are stored with the weights)."""
        self.entropy_bottleneck.update(force=True)
        self.entropy.gaussian.update_scale_table(gaussian_scale_table(self.cfg.scale_levels), force=True)

    @staticmethod
    def _tokens(ref_codes: Tensor | None) -> Tensor | None:
        """(R, C_r, h, w) int8 codes -> (1, R*h*w, C_r) float64 tokens, or None for R = 0."""
        if ref_codes is None or ref_codes.shape[0] == 0:
            return None
        return values_to_tokens(int8_to_values(ref_codes, torch.float64).unsqueeze(0))

    @torch.no_grad()
    def compress(self, x: Tensor, quality: float, ref_codes: Tensor | None = None, reconstruct: bool = False,
                 exact: bool = False, y: Tensor | None = None) -> tuple[EntropyStrings, Tensor | None]:
        """x (1, 3, H, W) in [0, 1] with H, W multiples of 64; ref_codes (R, C_r, h, w) int8 dictionary values.

        `y`: analyse(x, quality), when the caller already has it (encoder.py). With
        `reconstruct`, also the decoder's pixels (exact or fast synthesis, as a decoder would run it).
        """
        y_s = self.scaled_latent(self.analyse(x, quality) if y is None else y, quality)
        return self.code_latents(y_s, self._hyper_analyse(y_s), quality, ref_codes, reconstruct, exact)

    def scaled_latent(self, y: Tensor, quality: float) -> Tensor:
        """The latent as the coder quantises it: y times the quality's gains."""
        return y * self.gains(torch.tensor([quality], device=y.device))[0]

    @torch.no_grad()
    def code_latents(self, y_s: Tensor, z: Tensor, quality: float, ref_codes: Tensor | None = None,
                     reconstruct: bool = False, exact: bool = False) -> tuple[EntropyStrings, Tensor | None]:
        """Code a scaled latent y_s and hyper-latent z (any values: the analysis's, or refined ones, effort.py)
        on the exact probability path; with `reconstruct` also the decoder's pixels."""
        z_string = self.entropy_bottleneck.compress(z)[0]
        z_hat = self.entropy_bottleneck.decompress([z_string], z.shape[-2:])
        with exact_mode(y_s.device):
            feat, y_a, late = self._decoder_context(z_hat.double(), self._tokens(ref_codes))
            strings, y_hat_s, y_a = self.entropy.compress(y_s.double(), feat, y_a, late,
                                                          latent_band(y_s.shape[-1]))
        x_hat = self._reconstruct(y_hat_s, y_a, quality, exact) if reconstruct else None
        return EntropyStrings(z_string, strings), x_hat

    @torch.no_grad()
    def decompress(self, streams: EntropyStrings, size: tuple[int, int], quality: float,
                   ref_codes: Tensor | None = None, device: torch.device | str = "cpu", exact: bool = False,
                   symbols: Callable[[int, Tensor, Tensor], Tensor] | None = None) -> Tensor:
        """The padded reconstruction (1, 3, H', W') of an image of `size` (height, width) from its strings.

        The symbols always come from the exact probability path; `exact` picks the exact synthesis (identical
        pixels everywhere) over the fast one. `symbols(i, mu, scale indexes) -> slice i` replaces decoding
        the slice strings (progressive.py fills the slices a prefix lacks).
        """
        device = torch.device(device)
        z_shape = self.latent_shape(*size)
        z_hat = self.entropy_bottleneck.decompress([padded(streams.hyper, self.cfg.Nz * math.prod(z_shape))],
                                                   z_shape)
        with exact_mode(device):
            feat, y_a, late = self._decoder_context(z_hat.double(), self._tokens(ref_codes))
            band = latent_band(feat.shape[-1])
            if symbols is None:
                y_hat_s, y_a = self.entropy.decompress(streams.slices, feat, y_a, late, band)
            else:
                y_hat_s, y_a = self.entropy._code(feat, y_a, late, band, symbols)
        return self._reconstruct(y_hat_s, y_a, quality, exact)
