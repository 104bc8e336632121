"""The numpy backend of the decoder (decoder.py): numpy and CompressAI's rANS extension only, no torch.

A one-shot `clc decode` on a CPU used to spend most of its time in `import torch` (about 2 s on a 2-core machine,
more than the decoding). This module decodes a complete .clc file with numpy alone:

* the probability path (h_s, the CLM, the slice networks) on the same fixed-point grids as exact.py, in float64,
  where every sum is exact whatever the summation order, so it decodes the same symbols as the torch decoder,
  bit for bit (tests/test_lite.py checks the decoded latents for equality);
* the default, fast synthesis in float32 (like synthesis.FastSynthesis: its pixels are within a last bit or two
  of the exact synthesis; every transposed convolution runs in its sub-pixel form, subpixel.py);
* the rANS decoder: CompressAI's compiled extension alone (its package's __init__, which imports torch, never
  runs: model/rans.py).

It runs on the CPU. What it does not do (the exact synthesis, files whose slices are not all present) the
decoder gives the torch backend (decoder.choose_backend).
The band plans are those of the torch decoder (bands.py), so memory stays bounded on very large images.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..dictionary.choice import fitting_dictionary
from ..dictionary.pictures import Pictures
from ..errors import DictionaryError, ModelError, ReferenceIndexError, UsageError
from ..format import clcdict
from ..format.container import ClcFile
from ..format.ids import MODEL_ID_BYTES, file_id
from ..io.files import read_bytes
from ..model import ptfile
from ..model.bands import SYNTHESIS_HALO, latent_band, map_bands, synthesis_band
from ..model.config import PAD_MULTIPLE, ModelConfig
from ..model import layout
from ..model.grids import A_FRAC, A_MAX, B_FRAC, B_MAX, EXP2_LUT, LUT_SIZE, LUT_STEPS_PER_OCTAVE, VALUE_SCALE, \
    W_FRAC, W_MAX, attention_logit_scale, log2_on_lut_grid
from ..model.quality import level_weights
from ..model.rans import EntropyStrings, check_string, min_bits, padded, rans_module
from ..model.subpixel import PHASE_OFFSETS, phase_kernels, subpixel_kernel

BLOCK_BYTES = 1 << 22  # the row blocks of a convolution hold about this much of its columns or products
ATTENTION_ROWS = 4096  # query positions per attention block: bounds memory, not results (rows are independent)


# -- the rANS decoder -----------------------------------------------------------------------------------------------

class _Coder:
    """One entropy model's integer tables, coded with rANS exactly as CompressAI's EntropyModel.compress and
    decompress."""

    def __init__(self, state: dict, prefix: str) -> None:
        self.cdf = state[prefix + "_quantized_cdf"].astype(np.int32).tolist()
        self.lengths = state[prefix + "_cdf_length"].astype(np.int32).reshape(-1).tolist()
        self.offsets = state[prefix + "_offset"].astype(np.int32).reshape(-1).tolist()
        self.min_bits = min_bits(state[prefix + "_quantized_cdf"], state[prefix + "_cdf_length"])

    def decode(self, string: bytes, indexes: np.ndarray) -> np.ndarray:
        check_string(string, self.min_bits, indexes)
        values = rans_module().RansDecoder().decode_with_indexes(
            padded(string, indexes.size), indexes.reshape(-1).tolist(), self.cdf, self.lengths, self.offsets)
        return np.asarray(values, dtype=np.int32).reshape(indexes.shape)

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        """CompressAI's EntropyModel.compress of integer symbols with their tables' indexes."""
        return rans_module().RansEncoder().encode_with_indexes(
            symbols.reshape(-1).astype(np.int32).tolist(), indexes.reshape(-1).astype(np.int32).tolist(), self.cdf,
            self.lengths, self.offsets)


# -- fixed-point arithmetic (exact.py's, on numpy arrays) ------------------------------------------------------------

def to_grid(x: np.ndarray, frac: int, bound: float) -> np.ndarray:
    scale = float(2**frac)
    return np.round(np.clip(x, -bound, bound) * scale) / scale


def q_act(x: np.ndarray) -> np.ndarray:
    return to_grid(x, A_FRAC, A_MAX)


def _windows(x: np.ndarray, k: int) -> np.ndarray:
    """(C, H, W) -> (C, k, k, H, W) view of the zero-padded k x k neighbourhoods (F.unfold's order)."""
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    return np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2)).transpose(0, 3, 4, 1, 2)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Stride-1, 'same' convolution of x (C, H, W) with w (O, C, k, k) as matrix products over row blocks of a
    few MB (cache-sized, and no image-sized temporary: fresh memory costs page faults in a one-shot process).

    With fewer outputs than inputs, each block is one product giving every tap's contribution, then shifted
    sums (no column copies of the input); else the products run over the input's k x k columns."""
    o, c, k, _ = w.shape
    h, wd = x.shape[1:]
    dtype = np.result_type(x, w)
    if k > 1 and o < c:
        p = k // 2
        taps = w.transpose(2, 3, 0, 1).reshape(k * k * o, c)
        acc = np.zeros((o, h + 2 * p, wd + 2 * p), dtype)  # acc[:, i + p, j + p] = out[:, i, j]
        rows = max(1, BLOCK_BYTES // (k * k * o * wd * x.itemsize))
        for r in range(0, h, rows):
            n = min(rows, h - r)
            y = np.matmul(taps, x[:, r : r + n].reshape(c, -1)).reshape(k, k, o, n, wd)
            for u in range(k):
                for v in range(k):  # input (i', j') feeds output (i' - u + p, j' - v + p)
                    acc[:, r + 2 * p - u : r + 2 * p - u + n, 2 * p - v : 2 * p - v + wd] += y[u, v]
        out = acc[:, p : p + h, p : p + wd]
        if b is not None:
            out += b[:, None, None]
        return np.ascontiguousarray(out)
    wm = w.reshape(o, -1)
    out = np.empty((o, h * wd), dtype)
    win = x.reshape(c, 1, 1, h, wd) if k == 1 else _windows(x, k)
    rows = max(1, BLOCK_BYTES // (c * k * k * wd * x.itemsize))
    for r in range(0, h, rows):
        block = np.matmul(wm, win[..., r : r + rows, :].reshape(c * k * k, -1))
        if b is not None:
            block += b[:, None]
        out[:, r * wd : (r + rows) * wd] = block
    return out.reshape(o, h, wd)


def deconv2d(x: np.ndarray, kernels: dict[tuple[int, int], np.ndarray], b: np.ndarray) -> np.ndarray:
    """The 5x5 stride-2 transposed convolution of x (C, H, W) -> (O, 2 H, 2 W), each output phase from its own
    taps (subpixel.phase_kernels: 25 of the 3x3 form's 36), written in place (no pixel_shuffle copy), over row
    blocks of a few MB like conv2d."""
    c, h, wd = x.shape
    o = len(b)
    out = np.empty((o, 2 * h, 2 * wd), np.result_type(x, kernels[0, 0]))
    phases = out.reshape(o, h, 2, wd, 2)  # phases[:, i, a, j, b] = out[:, 2 i + a, 2 j + b]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    rows = max(1, BLOCK_BYTES // (c * 9 * wd * x.itemsize))
    cols = np.empty((3, 3, c, min(rows, h), wd), x.dtype)
    for r in range(0, h, rows):
        n = min(rows, h - r)
        block = cols[..., :n, :]
        for u in range(3):
            for v in range(3):
                block[u, v] = xp[:, r + u : r + u + n, v : v + wd]
        for (pa, pb), k in kernels.items():
            taps = block[PHASE_OFFSETS[pa][0] :]  # (u ranges are suffixes of 0..2: a view; v needs a copy below)
            if len(PHASE_OFFSETS[pb]) < 3:
                taps = taps[:, PHASE_OFFSETS[pb][0] :]
            y = np.matmul(k, taps.reshape(-1, n * wd))
            y += b[:, None]
            phases[:, r : r + n, pa, :, pb] = y.reshape(o, n, wd)
    return out


def pixel_shuffle(x: np.ndarray) -> np.ndarray:
    """(4 C, H, W) -> (C, 2 H, 2 W), channel 4 c + 2 a + b to phase (a, b) (torch's pixel_shuffle(2))."""
    c4, h, w = x.shape
    return x.reshape(c4 // 4, 2, 2, h, w).transpose(0, 3, 1, 4, 2).reshape(c4 // 4, 2 * h, 2 * w)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def exp2_weights(logits: np.ndarray, axis: int) -> np.ndarray:
    """exact.exp2_weights: the integer table 2^(-i/8) at i = round(8 (max - logit))."""
    peak = logits.max(axis=axis, keepdims=True)
    idx = np.clip(np.round((peak - logits) * LUT_STEPS_PER_OCTAVE), 0, LUT_SIZE - 1).astype(np.int64)
    return _LUT[idx]


_LUT = np.asarray(EXP2_LUT, dtype=np.float64)


class _QConv:
    """A QConv2d at coding time: gridded float64 weights; the output re-gridded."""

    def __init__(self, state: dict, name: str, on_grid: frozenset[str] = frozenset()) -> None:
        w = state[name + ".weight"].astype(np.float64)
        # a file's int16 grid integers k / 2^W_FRAC (|k| < 2^15) already lie on the grid, within W_MAX
        self.w = w if name + ".weight" in on_grid else to_grid(w, W_FRAC, W_MAX)
        self.b = to_grid(state[name + ".bias"].astype(np.float64), B_FRAC, B_MAX)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return q_act(conv2d(x, self.w, self.b))

    def tokens(self, t: np.ndarray) -> np.ndarray:
        """The 1x1 convolution on tokens (T, C) -> (T, O)."""
        return q_act(t @ self.w[:, :, 0, 0].T + self.b)


def _layers(state: dict, prefix: str, layers: list[layout.Layer], on_grid: frozenset[str]) -> list[tuple]:
    """A network of model/layout.py as (layer, its _QConv or None): layer i's weights are `prefix.i.*`."""
    return [(layer, _QConv(state, f"{prefix}.{i}", on_grid) if layer.kind == "conv" else None)
            for i, layer in enumerate(layers)]


def _run(layers: list[tuple], x: np.ndarray) -> np.ndarray:
    for layer, conv in layers:
        x = conv(x) if conv is not None else relu(x) if layer.kind == "relu" else pixel_shuffle(x)
    return x


# -- the model -------------------------------------------------------------------------------------------------------

def widened_state(blob: dict) -> dict[str, np.ndarray]:
    """The tensors as the torch model holds them (weights.model_from_state): fp16 widened to float32, the int16
    grid integers of the probability path divided back by 2^frac; both exact."""
    grids = blob.get("grids") or {}
    state = {}
    for name, t in blob["state"].items():
        if name in grids:
            t = (t.astype(np.float64) / 2 ** grids[name]).astype(np.float32)
        elif t.dtype == np.float16:
            t = t.astype(np.float32)
        state[name] = t
    return state


def state_model_id(cfg: ModelConfig, state: dict[str, np.ndarray]) -> bytes:
    """weights.model_id of the model these tensors load into (same bytes hashed, same order)."""
    h = hashlib.sha256(cfg.id_json().encode())
    for name, t in sorted(state.items()):
        t = np.ascontiguousarray(t)
        h.update(f"{name}|{ptfile.TORCH_DTYPE_NAMES[t.dtype]}|{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    return h.digest()[:MODEL_ID_BYTES]


class NumpyModel:
    """The decoder half of a CLCModel on numpy arrays (the network shapes of transforms.py, reference.py,
    entropy.py and synthesis.FastSynthesis)."""

    def __init__(self, cfg: ModelConfig, state: dict[str, np.ndarray], on_grid: frozenset[str] = frozenset(),
                 encoder: bool = False) -> None:
        """`on_grid`: names of weights the file stored as W_FRAC grid integers (no re-gridding needed);
        `encoder`: also keep the encoder half's tensors (a decoder does without their memory)."""
        self.cfg = cfg
        self.model_id = state_model_id(cfg, state)
        self.analysis_state = {k: v for k, v in state.items()  # encoding/numpy_encoder.py's
                               if k.startswith(("g_a.", "h_a.")) or k in ("log_gain", "log_scale_a")} if encoder else {}
        self.z_coder = _Coder(state, "entropy_bottleneck.")
        self.y_coder = _Coder(state, "entropy.gaussian.")
        self.z_medians = state["entropy_bottleneck.quantiles"][:, 0, 1].astype(np.float32)
        self.h_s = _layers(state, "h_s.body", layout.hyper_synthesis(cfg), on_grid)
        clm = {n: _QConv(state, f"clm.{n}", on_grid) for n in ("query", "key", "value", "align")}
        self.query, self.key, self.value, self.align = clm["query"], clm["key"], clm["value"], clm["align"]
        self.null_key = q_act(state["clm.null_key"].astype(np.float64))
        self.null_value = q_act(state["clm.null_value"].astype(np.float64))
        self.logit_scale = attention_logit_scale(cfg.attn_dim)
        base = cfg.feat + cfg.ref_out
        starts = [base + sum(cfg.slices[:i]) for i in range(len(cfg.slices))]
        self.param_nets = [_layers(state, f"entropy.param_nets.{i}", layout.slice_parameters(cfg, c, s), on_grid)
                           for i, (c, s) in enumerate(zip(starts, cfg.slices))]
        self.lrp_nets = [_layers(state, f"entropy.lrp_nets.{i}", layout.slice_residual(cfg, c + s, s), on_grid)
                         for i, (c, s) in enumerate(zip(starts, cfg.slices))]
        self.halos = (layout.radius(layout.slice_parameters(cfg, 1, 1)), layout.radius(layout.slice_residual(cfg, 1, 1)))
        self.log_inv_gain = state["log_inv_gain"].astype(np.float32)
        self.log_scale = state["log_scale_s"].astype(np.float32) if cfg.rate_scales else None
        self.gate = (state["fusion.gate.weight"], state["fusion.gate.bias"])
        self.proj = (state["fusion.proj.weight"], state["fusion.proj.bias"])
        # g_s: ("deconv", phase kernels, bias), ("subpixel", 3x3 kernel, bias) and ("igdn", gamma, beta)
        self.layers: list[tuple] = []
        for i, layer in enumerate(layout.synthesis(cfg)):
            p = f"g_s.{i}."
            if layer.kind == "deconv":
                w, b = state[p + "weight"], state[p + "bias"]
                if 4 * w.shape[1] < w.shape[0]:  # few outputs (the last layer: 3 colours): conv2d's shifted sums
                    self.layers.append(("subpixel", *subpixel_kernel(w, b)))
                else:
                    self.layers.append(("deconv", phase_kernels(w), b))
            else:
                self.layers.append(("igdn", _reparam(state, p + "gamma"), _reparam(state, p + "beta")))

    @classmethod
    def load(cls, path: str | Path, encoder: bool = False) -> "NumpyModel":
        """A weights file (weights.save_weights), with the torch loader's error messages (`encoder`: __init__'s)."""
        path = Path(path)
        try:
            blob = ptfile.load(path)
        except FileNotFoundError:
            raise ModelError(f"model weights not found: {path}") from None
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing problem
            raise ModelError(f"cannot read model weights {path}: {e.__class__.__name__}") from None
        if not isinstance(blob, dict) or blob.get("format") not in ptfile.READABLE_FORMATS:
            raise ModelError(f"{path} is not a clccodec weights file")
        try:
            on_grid = frozenset(k for k, frac in (blob.get("grids") or {}).items() if frac == W_FRAC)
            return cls(ModelConfig.from_dict(blob["config"]), widened_state(blob), on_grid, encoder)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
            raise ModelError(f"weights file {path} does not match its config: {e.__class__.__name__}: {e}") from None

    # -- the probability path (exact) ------------------------------------------------------------------------

    def hyper_synthesis(self, z_hat: np.ndarray) -> np.ndarray:
        return _run(self.h_s, q_act(z_hat))

    def clm(self, feat: np.ndarray, tokens: np.ndarray | None, decoded: np.ndarray | None = None) -> np.ndarray:
        """ReferenceAttention.forward: F_h (F, h, w), tokens (T, C_r) -> y_a (ref_out, h, w)."""
        _, h, w = feat.shape
        if tokens is None:
            att = np.broadcast_to(self.null_value[:, None, None], (len(self.null_value), h, w))
        else:
            k = np.concatenate([self.null_key[None], self.key.tokens(tokens)])
            v = np.concatenate([self.null_value[None], self.value.tokens(tokens)])
            q = self.query(feat if decoded is None else np.concatenate([feat, decoded])).reshape(len(k[0]), -1).T
            prior = log2_on_lut_grid(len(tokens)) if self.cfg.null_prior else 0.0
            att = np.empty((h * w, v.shape[1]))
            for s in range(0, h * w, ATTENTION_ROWS):
                logits = q[s : s + ATTENTION_ROWS] @ k.T * self.logit_scale
                logits[:, 0] += prior
                wts = exp2_weights(logits, -1)
                att[s : s + ATTENTION_ROWS] = q_act((wts @ v) / wts.sum(-1, keepdims=True))
            att = att.T.reshape(-1, h, w)
        c, g = att.shape[0], self.cfg.align_groups
        wts = exp2_weights(self.align(np.concatenate([feat, att])).reshape(g, 1, 9, h, w), 2)
        nb = _windows(att, 3).reshape(g, c // g, 9, h, w)
        return q_act(((nb * wts).sum(2) / wts.sum(2)).reshape(c, h, w))

    def decode_latents(self, streams: EntropyStrings, size: tuple[int, int],
                       tokens: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """CLCModel.decompress up to the synthesis: the slices y_hat_s (C, h, w) and the final y_a."""
        zh, zw = -(-size[0] // PAD_MULTIPLE), -(-size[1] // PAD_MULTIPLE)
        idx = np.broadcast_to(np.arange(self.cfg.Nz, dtype=np.int32)[:, None, None], (self.cfg.Nz, zh, zw))
        z_hat = self.z_coder.decode(streams.hyper, idx).astype(np.float32) + self.z_medians[:, None, None]
        return self.code_latents(z_hat, tokens,
                                 lambda i, mu, scales: self.y_coder.decode(streams.slices[i], scales) + mu)

    def hyper_features(self, z_hat: np.ndarray) -> np.ndarray:
        """F_h = h_s(z_hat) (F, h, w) of z_hat (Nz, h/4, w/4) float32, band by band."""
        return map_bands(self.hyper_synthesis, z_hat.astype(np.float64), latent_band(4 * z_hat.shape[-1]) // 4,
                         halo=3, up=4)

    def code_latents(self, z_hat: np.ndarray, tokens: np.ndarray | None,
                     symbols: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                     feat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The slice loop of both directions (entropy.SliceEntropyModel._code): z_hat (Nz, h/4, w/4) float32 ->
        y_hat_s (C, h, w) and the final y_a; symbols(i, mu, scale indexes) codes slice i and returns its y_hat.
        `feat`: hyper_features(z_hat), when the caller has it (an encoder trying several reference counts)."""
        cfg = self.cfg
        feat = self.hyper_features(z_hat) if feat is None else feat
        band = latent_band(feat.shape[-1])
        late: Callable[[np.ndarray], np.ndarray] | None = None  # network.CLCModel._decoder_context
        if cfg.query_slices and tokens is not None:
            y_a = map_bands(lambda f: self.clm(f, None), feat, band, halo=2)
            late = lambda decoded: map_bands(lambda f, d: self.clm(f, tokens, d), [feat, decoded], band,  # noqa: E731
                                             halo=2)
        else:
            y_a = map_bands(lambda f: self.clm(f, tokens), feat, band, halo=2)
        nf, base = feat.shape[0], feat.shape[0] + y_a.shape[0]
        ctx = np.empty((base + sum(cfg.slices), *feat.shape[1:]))
        ctx[:nf], ctx[nf:base] = feat, y_a
        n = base
        for i, s in enumerate(cfg.slices):
            if late is not None and i == cfg.query_slices:
                ctx[nf:base] = late(ctx[base:n])
            out = map_bands(lambda x: _run(self.param_nets[i], x), ctx[:n], band, halo=self.halos[0])
            scales = np.clip(np.round(out[s:]), 0, cfg.scale_levels - 1).astype(np.int32)
            ctx[n : n + s] = symbols(i, out[:s], scales)
            r = map_bands(lambda x: _run(self.lrp_nets[i], x), ctx[: n + s], band, halo=self.halos[1])
            ctx[n : n + s] += np.clip(r, -0.5, 0.5)
            n += s
        return ctx[base:], ctx[nf:base]

    # -- the fast synthesis (float32) -------------------------------------------------------------------------

    @staticmethod
    def table_at(log_table: np.ndarray, quality: float) -> np.ndarray:
        """quality.interpolate_log_table of a per-level table (levels and fraction from its scalar twin,
        quality.level_weights), in float32 like the torch decoder."""
        lo, frac = level_weights(quality, log_table.shape[0])
        t = np.float32(frac)
        return np.exp(log_table[lo] * (np.float32(1) - t) + log_table[lo + 1] * t)

    def at_quality(self, quality: float) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """synthesis.FastSynthesis.at_quality: the inverse gains and each inverse GDN's (gamma, beta), the rate
        scales (if any) folded in."""
        gdns = [(p1, p2) for kind, p1, p2 in self.layers if kind == "igdn"]
        if self.log_scale is not None:
            s = self.table_at(self.log_scale, quality)
            cut = np.cumsum([len(b) for _, b in gdns])[:-1]
            gdns = [(g * (v**2)[:, None], b * v**2) for (g, b), v in zip(gdns, np.split(s, cut))]
        return self.table_at(self.log_inv_gain, quality), gdns

    def synthesize(self, y_hat_s: np.ndarray, y_a: np.ndarray,
                   params: tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
        """synthesis.FastSynthesis: y_hat_s and y_a (C, h, w) -> x_hat (3, 16 h, 16 w) in [0, 1], float32."""
        inv_gain, gdns = params
        y = y_hat_s.astype(np.float32) * inv_gain[:, None, None]
        a = y_a.astype(np.float32)
        with np.errstate(over="ignore"):  # exp overflows to inf for very negative gate logits: alpha = 0, right
            alpha = 1 / (1 + np.exp(-conv2d(np.concatenate([y, a]), *self.gate)))
        x = y + alpha * conv2d(a, *self.proj)
        k = 0
        for kind, p1, p2 in self.layers:
            if kind == "deconv":
                x = deconv2d(x, p1, p2)
            elif kind == "subpixel":
                x = pixel_shuffle(conv2d(x, p1, p2))
            else:
                x = _inverse_gdn(x, *gdns[k])
                k += 1
        return np.clip(x, 0, 1)

    def reconstruct(self, y_hat_s: np.ndarray, y_a: np.ndarray, quality: float) -> np.ndarray:
        params = self.at_quality(quality)
        band = synthesis_band(y_hat_s.shape[-1], exact=False)
        return map_bands(lambda y, a: self.synthesize(y, a, params), [y_hat_s, y_a], band, SYNTHESIS_HALO, up=16)


def _inverse_gdn(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """x * sqrt(beta + gamma x^2) at every position of x (C, H, W), in place, a block of columns at a time."""
    c, h, w = x.shape
    flat = x.reshape(c, -1)
    step = max(1, BLOCK_BYTES // (c * x.itemsize))
    for s in range(0, flat.shape[1], step):
        r = flat[:, s : s + step]
        norm = np.matmul(gamma, r * r)
        norm += beta[:, None]
        r *= np.sqrt(norm, out=norm)
    return x


def _reparam(state: dict, name: str) -> np.ndarray:
    """GDN's NonNegativeParametrizer: max(x, bound)^2 - pedestal, in float32 (compressai.layers.gdn)."""
    x = state[name]
    bound = state[name + "_reparam.lower_bound.bound"]
    pedestal = state[name + "_reparam.pedestal"]
    return (np.maximum(x, bound) ** 2 - pedestal).astype(np.float32)


def to_pixels(x_hat: np.ndarray) -> np.ndarray:
    """imageio.to_pixels: float (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounding half to even."""
    return np.round(np.clip(np.nan_to_num(x_hat, nan=0.0), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


# -- the decoder -----------------------------------------------------------------------------------------------------

class NumpyDictionary:
    """A .clcdict without torch: its id and int8 values (the decoder's), its extractor and retrieval keys (the
    numpy encoder's)."""

    def __init__(self, data: bytes, name: str, encoder: bool = False) -> None:
        """`encoder`: also keep what the encoder retrieves with (the PCA and the keys)."""
        d = clcdict.unpack(data, name)
        self.model_id = bytes(d.model_id)
        self.id = clcdict.dictionary_id(self.model_id, d.values, d.pictures)
        self.file_id = file_id(self.id)
        self.values = d.values
        self.pictures = Pictures(d.pictures)
        self.extractor = d.extractor
        self.retrieval = d if encoder else None  # mean, components and keys: the encoder's retrieval index

    @classmethod
    def load(cls, path: str | Path, encoder: bool = False) -> "NumpyDictionary":
        return cls(read_bytes(Path(path), DictionaryError, "reference dictionary "), str(path), encoder)

    def tokens(self, indices: list[int]) -> np.ndarray:
        """The tokens (R * h * w, C_r) of the given entries, float64 (codec.CLCModel._tokens)."""
        bad = [i for i in indices if not 0 <= i < len(self.values)]
        if bad:
            raise ReferenceIndexError(f"corrupt file: reference index {bad[0]} is outside dictionary "
                                      f"{self.id.hex()} ({len(self.values)} entries)")
        codes = self.values[np.asarray(indices, dtype=np.int64)]  # (R, C_r, h, w)
        return (codes.astype(np.float64) / VALUE_SCALE).transpose(0, 2, 3, 1).reshape(-1, codes.shape[1])


class NumpyBackend:
    """The decoder's numpy backend: complete files, fast synthesis (decoder.choose_backend)."""

    def __init__(self, model: str | Path, dictionary: str | Path | bool | None = None, encoder: bool = False) -> None:
        """`dictionary`: None (the default dictionary, if it fits the model), False (none) or a path (loaded
        now); `encoder`: keep what the numpy encoder needs too."""
        self.encoder = encoder
        self.model = NumpyModel.load(model, encoder)
        self.model_id = self.model.model_id
        self.slice_count = len(self.model.cfg.slices)
        self.slice_sizes = tuple(self.model.cfg.slices)
        self.hyper_min_bits = self.model.z_coder.min_bits
        self.latent_min_bits = float(self.model.y_coder.min_bits.min())
        self._dictionary_arg = dictionary
        self._dictionary: NumpyDictionary | None = None
        self._dictionary_loaded = False
        self._lock = threading.Lock()
        if dictionary not in (None, False):
            _ = self.dictionary

    @property
    def dictionary(self) -> "NumpyDictionary | None":
        if not self._dictionary_loaded:
            with self._lock:  # (threads sharing one backend: none may see "loaded" before it is)
                if not self._dictionary_loaded:
                    self._dictionary = fitting_dictionary(self._dictionary_arg, self.model_id,
                                                          lambda p: NumpyDictionary.load(p, self.encoder))
                    self._dictionary_loaded = True
        return self._dictionary

    def references(self, indices: list[int]) -> np.ndarray:
        return self.dictionary.tokens(indices)  # checks the indices

    def pixels(self, f: ClcFile, tokens: np.ndarray | None, exact: bool, detail: str, seed: int) -> np.ndarray:
        if exact or f.slices_present != f.slices_total:
            raise UsageError("the numpy backend decodes complete files with the fast synthesis only")
        with np.errstate(all="ignore"):  # a corrupt file's garbage latents overflow: they stay garbage, silently
            y_hat_s, y_a = self.model.decode_latents(f, (f.height, f.width), tokens)
            x_hat = self.model.reconstruct(y_hat_s, y_a, f.quality)
            return to_pixels(x_hat[:, : f.height, : f.width])
