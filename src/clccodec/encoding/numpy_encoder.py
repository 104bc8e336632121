"""The torch-free encoder: numpy and CompressAI's compiled rANS coder, for a one-shot `clc encode` on a CPU.

A one-shot encode through torch spends more time importing torch and loading the model than coding. This
encoder codes what encoder.ImageEncoder codes at efforts 0-2 (the reference counts of effort.effort_plan, chosen
by size or by real cost on the decoder's pixels), at a quality or at the one that meets a target
(ratecontrol.py), with:

* the analysis g_a (rate-scaled for the quality, and plain for the retrieval query) and the hyper-analysis h_a
  in float32, with the numpy decoder's convolution kernels (a stride-2 convolution as a matrix product over
  its strided columns);
* the retrieval of the dictionary's latent keys (SPP of the plain latent, the dictionary's PCA, FAISS);
* the probability path of the numpy decoder (decoding/numpy_backend.py: exact, the same symbols as torch's),
  with the rounding and rANS coding of CompressAI's entropy models, and its fast synthesis for real costs.

Its files need not be byte-identical to the torch encoder's: the analysis is float, so the last bits of a latent
can differ and a value next to a rounding boundary round the other way (and a real cost or PSNR measured on
pixels a last bit apart can tip a close choice). Every file decodes to the same pixels on both decoders, because
the decoders never see the analysis. `supported` says which encodes it does; the others (efforts above 2,
block copy, near-lossless, previews, ResNet-50 dictionaries) stay with the torch encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..decoding.numpy_backend import BLOCK_BYTES, NumpyBackend, NumpyModel, _reparam, conv2d, relu, to_pixels
from ..dictionary.retrieval import CANDIDATES_PER_QUERY, DEFAULT_MERGE, DEFAULT_QUERY, DEFAULT_ROTATE, \
    SPP_LEVELS, RetrievalIndex, merge_results, query_size
from ..format import container
from ..format.alpha import pack_alpha
from ..format.container import ClcFile, quantize_quality
from ..errors import ModelError, UsageError
from ..format.ids import NO_DICTIONARY, file_id
from ..evaluation.metrics import psnr
from ..io.images import LoadedImage, load_image
from ..model.bands import analysis_band, latent_band, map_bands, map_tiles
from ..model.config import PAD_MULTIPLE
from . import onnx_analysis
from .effort import NUMPY_EFFORT_MAX, effort_plan, rd_cost
from .ratecontrol import Target, search_quality


# g_a on large inputs runs conv, GDN, conv on tiles of HEAD_TILE x HEAD_TILE pixels, then GDN, conv, GDN, conv on
# tiles of TAIL_TILE x TAIL_TILE of their output (NumpyAnalysis.analyse). At 4000x3000 in ONNX Runtime, with the
# tail on tiles as large as the head's: 360 px, 8.1 s, +218 MiB; 512 px, 8.2 s, +466 MiB; full-width bands of
# 0.5 MP, 7.8 s, +864 MiB. Head 300, tail 152: 7.5 s, +54 MiB (numpy: 13-16 s, +30 MiB).
HEAD_TILE = 300
TAIL_TILE = 152
WHOLE_ANALYSIS = 1 << 19  # input pixels up to which g_a runs at once (768x512 in ONNX Runtime: +170 MiB)


def conv2d_stride2(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """nn.Conv2d(k=5, stride=2, padding=2) of x (C, H, W) -> (O, ceil(H / 2), ceil(W / 2)), as matrix products over
    the strided 5 x 5 columns of a few rows at a time (decoding/numpy_backend.conv2d's blocks)."""
    o, c, k, _ = w.shape
    assert k == 5
    h, wd = -(-x.shape[1] // 2), -(-x.shape[2] // 2)
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(1, 2))[:, ::2, ::2]  # (C, h, w, 5, 5)
    win = win.transpose(0, 3, 4, 1, 2)  # (C, 5, 5, h, w): F.unfold's order, the weights' (O, C, 5, 5)
    wm = w.reshape(o, -1)
    out = np.empty((o, h * wd), np.result_type(x, w))
    rows = max(1, BLOCK_BYTES // (c * 25 * wd * x.itemsize))
    for r in range(0, h, rows):
        block = np.matmul(wm, win[..., r : r + rows, :].reshape(c * 25, -1))
        block += b[:, None]
        out[:, r * wd : (r + rows) * wd] = block
    return out.reshape(o, h, wd)


def gdn(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """x / sqrt(beta + gamma x^2) at every position of x (C, H, W), in place."""
    c = x.shape[0]
    flat = x.reshape(c, -1)
    step = max(1, (1 << 22) // (c * x.itemsize))
    for s in range(0, flat.shape[1], step):
        r = flat[:, s : s + step]
        norm = np.matmul(gamma, r * r)
        norm += beta[:, None]
        r /= np.sqrt(norm, out=norm)
    return x


def adaptive_avg_pool(x: np.ndarray, n: int) -> np.ndarray:
    """F.adaptive_avg_pool2d(x, n) of x (C, H, W): cell i spans rows floor(i H / n) .. ceil((i + 1) H / n)."""
    c, h, w = x.shape
    out = np.empty((c, n, n), np.float32)
    for i in range(n):
        r0, r1 = (i * h) // n, -(-(i + 1) * h // n)
        for j in range(n):
            c0, c1 = (j * w) // n, -(-(j + 1) * w // n)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2), dtype=np.float64)
    return out


def area_resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """F.interpolate(x, (h, w), mode="area") of x (C, H, W) float32, i.e. adaptive average pooling: output row i
    averages input rows floor(i H / h) .. ceil((i + 1) H / h), and likewise the columns; one axis at a time."""
    return _average_cells(_average_cells(x, h, 1), w, 2)


def _average_cells(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Adaptive average pooling of one axis to n cells, as the sum of a few gathered slices (a cell spans at most
    ceil(size / n) + 1 of them)."""
    i = np.arange(n)
    first, end = (i * x.shape[axis]) // n, -(-(i + 1) * x.shape[axis] // n)
    count = end - first
    shape = [1] * x.ndim
    shape[axis] = n
    out = np.take(x, first, axis=axis)
    for k in range(1, int(count.max())):
        part = np.take(x, np.minimum(first + k, end - 1), axis=axis)
        part *= (k < count).astype(x.dtype).reshape(shape)  # (cells shorter than k + 1 add nothing)
        out += part
    out /= count.astype(x.dtype).reshape(shape)
    return out


def query_view(x: np.ndarray) -> np.ndarray:
    """features.query_view: the image (3, H, W) itself, or (above QUERY_MAX_PIXELS) an area-downscaled copy."""
    size = query_size(*x.shape[1:])
    return x if size == x.shape[1:] else area_resize(x, *size)


def spp(y: np.ndarray) -> np.ndarray:
    """features.spp of a latent (C, h, w): (1, 2 C 21) means of the values and of their magnitudes."""
    return np.concatenate([adaptive_avg_pool(src, n).reshape(-1) for src in (y, np.abs(y))
                           for n in SPP_LEVELS])[None].astype(np.float32)


class NumpyAnalysis:
    """g_a and h_a of a loaded NumpyModel in float32 (transforms.analysis, transforms.hyper_analysis); g_a runs
    in ONNX Runtime where it is installed (onnx_analysis.py: faster), else in numpy."""

    def __init__(self, model, onnx: bool = True) -> None:
        """`onnx`: run g_a in ONNX Runtime if it is installed (False: always numpy)."""
        st = model.analysis_state
        self.model = model
        self.g_a: list[tuple] = []  # transforms.analysis: convolutions (stride 2) and GDNs, in their order
        i = 0
        while f"g_a.{i}.weight" in st or f"g_a.{i}.gamma" in st:
            p = f"g_a.{i}."
            if p + "weight" in st:
                self.g_a.append(("conv", st[p + "weight"].astype(np.float32), st[p + "bias"].astype(np.float32)))
            else:
                self.g_a.append(("gdn", _reparam(st, p + "gamma"), _reparam(st, p + "beta")))
            i += 1
        # transforms.hyper_analysis: a 3x3 convolution, then two 5x5 of stride 2, with ReLUs between
        self.h_a = [(st[f"h_a.{i}.weight"].astype(np.float32), st[f"h_a.{i}.bias"].astype(np.float32))
                    for i in (0, 2, 4)]
        self.log_gain = st["log_gain"].astype(np.float32)
        self.log_scale = st["log_scale_a"].astype(np.float32) if model.cfg.rate_scales else None
        cfg = model.cfg
        convs = [layer[1] for layer in self.g_a if layer[0] == "conv"]
        if ([layer[0] for layer in self.g_a[:3]] != ["conv", "gdn", "conv"] or convs[0].shape[1] != 3
                or convs[-1].shape[0] != cfg.latent_channels or self.h_a[0][0].shape[1] != cfg.latent_channels
                or self.h_a[-1][0].shape[0] != cfg.Nz):
            raise ValueError(f"g_a / h_a shapes do not match the config {cfg.name!r}")
        self.ort = onnx_analysis.runtime() if onnx else None
        self._sessions: dict[tuple[int, int | None], onnx_analysis.OnnxLayers] = {}

    def gdn_scales(self, quality: float | None) -> list[np.ndarray]:
        """Each GDN's rate scales at `quality` (ones for the plain g_a, or without rate scales)."""
        gdns = [b for kind, _, b in self.g_a if kind == "gdn"]
        if quality is None or self.log_scale is None:
            return [np.ones_like(b) for b in gdns]
        return np.split(self.model.table_at(self.log_scale, quality), np.cumsum([len(b) for b in gdns])[:-1])

    def gdns(self, quality: float | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each GDN's (gamma, beta), with quality's rate scales s folded in: s x / sqrt(beta + gamma x^2) =
        x / sqrt((beta + gamma x^2) / s^2) (synthesis.folded_gdns)."""
        gdns = [(g, b) for kind, g, b in self.g_a if kind == "gdn"]
        if quality is None or self.log_scale is None:
            return gdns
        return [(g / (s * s)[:, None], b / (s * s)) for (g, b), s in zip(gdns, self.gdn_scales(quality))]

    def analyse(self, x: np.ndarray, quality: float | None = None) -> np.ndarray:
        """network.CLCModel.analyse of x (3, H, W) float32 in [0, 1], H and W multiples of 64, band by band."""
        if self.ort is not None:
            scales = self.gdn_scales(quality)
            first = np.cumsum([0] + [kind == "gdn" for kind, _, _ in self.g_a])  # each layer's first GDN index

            def run(t: np.ndarray, part: slice) -> np.ndarray:
                key = (part.start or 0, part.stop)
                if key not in self._sessions:
                    self._sessions[key] = onnx_analysis.OnnxLayers(self.ort, self.g_a[part])
                return self._sessions[key](t, scales[first[key[0]] : first[part.stop or len(self.g_a)]])
        else:
            gdns = iter(self.gdns(quality))
            layers = [(p1, p2) if kind == "conv" else next(gdns) for kind, p1, p2 in self.g_a]
            kinds = [kind for kind, _, _ in self.g_a]

            def run(t: np.ndarray, part: slice) -> np.ndarray:
                if kinds[part][0] == "gdn":
                    t = t.copy()  # (gdn works in place: not on the caller's array, whose tiles overlap)
                for kind, (p1, p2) in zip(kinds[part], layers[part]):
                    t = conv2d_stride2(t, p1, p2) if kind == "conv" else gdn(t, p1, p2)
                return t

        def g_a(t: np.ndarray) -> np.ndarray:
            # the first convolution's output (128 channels at half resolution, and ONNX Runtime's temporaries
            # beside it) would take GBs for a 4 MP band: the head and the tail on tiles (both have a receptive
            # radius of 6 input rows and columns: halo 8, ~10 % more work); all at once on smaller inputs
            if t.shape[-2] * t.shape[-1] <= WHOLE_ANALYSIS:
                return run(t, slice(0, None))
            head = map_tiles(lambda u: run(u, slice(0, 3)), t, HEAD_TILE, halo=8, down=4)
            return map_tiles(lambda u: run(u, slice(3, None)), head, TAIL_TILE, halo=8, down=4)

        y = map_bands(g_a, x, analysis_band(x.shape[-1]), halo=64, down=16)
        if x.shape[-2] * x.shape[-1] > WHOLE_ANALYSIS:
            # the sessions' arenas keep what their largest run needed (~100-200 MB), which the probability path
            # needs next on a large image: the next analysis rebuilds them (~30 ms each)
            self._sessions.clear()
        return y

    def scaled(self, y: np.ndarray, quality: float) -> np.ndarray:
        return y * self.model.table_at(self.log_gain, quality)[:, None, None]

    def hyper_analyse(self, y_s: np.ndarray) -> np.ndarray:
        (w0, b0), (w1, b1), (w2, b2) = self.h_a

        def h_a(t: np.ndarray) -> np.ndarray:
            return conv2d_stride2(relu(conv2d_stride2(relu(conv2d(t, w0, b0)), w1, b1)), w2, b2)

        return map_bands(h_a, y_s, latent_band(y_s.shape[-1]), halo=8, down=4)


def export_onnx(model: str | Path, output: str | Path, quality: float | None = None) -> float | None:
    """Write the analysis of a weights file as an ONNX model: input "x" (N, 3, H, W) float32 RGB in [0, 1] (H, W
    multiples of 16; the coder pads to 64), output "y" (N, C, H / 16, W / 16): the latent the coder rounds at
    `quality` (its rate scales and gains folded in), or with None the plain g_a that the dictionaries and the
    retrieval use. Returns the quality exported (the coded one: quantize_quality), or None."""
    if onnx_analysis.runtime() is None:
        raise UsageError("ONNX export needs the onnx and onnxruntime packages (pip install onnx onnxruntime)")
    analysis = NumpyAnalysis(NumpyModel.load(model, encoder=True), onnx=False)
    layers = list(analysis.g_a)
    if quality is not None:
        quality = quantize_quality(quality)
        gain = analysis.model.table_at(analysis.log_gain, quality)
        kind, w, b = layers[-1]
        layers[-1] = (kind, w * gain[:, None, None, None], b * gain)
    name = "clc_analysis" if quality is None else f"clc_analysis_q{quality:g}"
    data = onnx_analysis.graph(layers, analysis.gdn_scales(quality), name)
    with open(output, "wb") as f:
        f.write(data)
    return quality


@dataclass
class NumpyCoded:
    """One encode: the file, the quality coded, the references kept, the decoder's pixels (when computed) and a
    target's note (when it was not met)."""

    data: bytes
    quality: float
    refs: int
    pixels: np.ndarray | None = None
    note: str | None = None


class NumpyEncoder:
    """Encodes images without torch (the CLI's encoder on a CPU where `supported`)."""

    def __init__(self, model: str | Path, dictionary: str | Path | bool | None = None) -> None:
        """`model`: a weights file; `dictionary`: None (the default one, if it fits), False (none) or a path."""
        self.backend = NumpyBackend(model, dictionary, encoder=True)
        self.model = self.backend.model
        self.model_id = file_id(self.model.model_id)
        try:
            self.analysis = NumpyAnalysis(self.model)
        except (KeyError, ValueError, IndexError) as e:
            raise ModelError(f"weights file {model} has no usable analysis transform: {e.__class__.__name__}: {e}") \
                from None
        self._index: RetrievalIndex | None = None

    def supported(self, *, refs: int, effort: int, slices: int | None,
                  near_lossless: int | None) -> bool:
        """Whether this encoder codes such an encode as the torch one would (else use the torch encoder)."""
        if effort > NUMPY_EFFORT_MAX or near_lossless is not None:
            return False
        if slices is not None and slices < len(self.model.cfg.slices):
            return False
        d = self.backend.dictionary if refs else None
        return d is None or (d.extractor == "latent" and not len(d.pictures) and DEFAULT_QUERY == "global"
                             and not DEFAULT_ROTATE)

    def encode(self, image, quality: float, refs: int, *, effort: int = 0, target: Target | None = None,
               strip: bool = False, alpha: bool = True, fallback: bool = True) -> tuple[NumpyCoded, list[str]]:
        """The encode of an image (a path, bytes or a LoadedImage) at `quality`, or at the quality that meets
        `target`, and the notes about the input: Codec.encode_full's file
        up to the analysis's last bits (effort.effort_plan's choices; `fallback` False: exactly `refs`
        references)."""
        img = image if isinstance(image, LoadedImage) else load_image(image)
        if not self.supported(refs=refs, effort=effort, slices=None, near_lossless=None):
            raise UsageError("this encode needs the torch encoder (clccodec.Codec)")
        if not alpha and img.alpha is not None:
            img = replace(img, alpha=None)
        d = self.backend.dictionary
        image_coder = _ImageCoder(self, img, effort_plan(effort, refs if d is not None else 0, fallback), strip)
        if target is None:
            return image_coder.encode(quantize_quality(float(quality))), list(img.notes)
        t = target

        def encode_at(q: float) -> tuple[float, NumpyCoded]:
            r = image_coder.encode(q, pixels=t.kind == "psnr")
            if t.kind == "size":
                return float(len(r.data)), r
            if t.kind == "bpp":
                return 8 * len(r.data) / (img.width * img.height), r
            return psnr(img.pixels, r.pixels), r

        found = search_quality(t, encode_at)
        r = found.best.result
        r.note = found.note
        return r, list(img.notes) + ([found.note] if found.note else [])

    def retrieve(self, y: np.ndarray, m: int) -> list[int]:
        """dictionary/store.ReferenceDictionary.retrieve with the latent extractor, global query, no rotation."""
        d = self.backend.dictionary
        if self._index is None:
            self._index = RetrievalIndex(d.retrieval.mean, d.retrieval.components, d.retrieval.keys)
        m = min(m, len(d.values))
        hits = self._index.search(spp(y), min(len(d.values), m + CANDIDATES_PER_QUERY))
        return merge_results([hits], m, DEFAULT_MERGE)


class _ImageCoder:
    """One image's encodes at any quality (encoder.ImageEncoder's, for efforts 0-2): the retrieval, the padded
    input and the last quality's latent are computed once."""

    def __init__(self, enc: NumpyEncoder, img: LoadedImage, plan, strip: bool) -> None:
        self.enc, self.model, self.img, self.plan, self.strip = enc, enc.model, img, plan, strip
        self.x = padded(img.pixels)
        most = max(plan.refs)
        self.indices = enc.retrieve(enc.analysis.analyse(query_view(self.x)), most) if most else []
        self.alpha = pack_alpha(img.alpha) if img.alpha is not None else b""

    def encode(self, q: float, pixels: bool = False) -> NumpyCoded:
        """The file at quality q with the plan's reference count (the smallest file, or the lowest real cost
        lambda 255^2 MSE + bpp on the decoder's pixels); `pixels`: also the decoder's pixels."""
        a, model = self.enc.analysis, self.model
        y_s = a.scaled(a.analyse(self.x, q), q)
        z = a.hyper_analyse(y_s)
        medians = model.z_medians[:, None, None]
        z_symbols = np.round(z - medians).astype(np.int32)
        z_string = model.z_coder.encode(z_symbols, np.broadcast_to(
            np.arange(len(medians), dtype=np.int32)[:, None, None], z_symbols.shape))
        z_hat = z_symbols.astype(np.float32) + medians
        feat = model.hyper_features(z_hat)  # (the same for every reference count)
        y64 = y_s.astype(np.float64)
        best: tuple[float, NumpyCoded, tuple] | None = None
        for m in self.plan.refs:  # (sorted: on a tie the fewer references win, as in the torch encoder)
            data, latents = self._file(q, z_hat, feat, z_string, y64, self.indices[:m])
            coded = NumpyCoded(data, q, len(self.indices[:m]))
            if self.plan.by_cost and len(self.plan.refs) > 1:
                coded.pixels = self._pixels(latents, q)
                cost = rd_cost(self.img.pixels, coded.pixels, len(data), q)
            else:
                cost = float(len(data))
            if best is None or cost < best[0]:
                best = (cost, coded, latents)
        assert best is not None
        _, coded, latents = best
        if pixels and coded.pixels is None:
            coded.pixels = self._pixels(latents, q)
        return coded

    def _pixels(self, latents: tuple, q: float) -> np.ndarray:
        x_hat = self.model.reconstruct(*latents, q)
        return to_pixels(x_hat[:, : self.img.height, : self.img.width])

    def _file(self, q: float, z_hat: np.ndarray, feat: np.ndarray, z_string: bytes, y64: np.ndarray,
              indices: list[int]) -> tuple[bytes, tuple]:
        tokens = self.enc.backend.references(indices) if indices else None
        slices = np.split(y64, np.cumsum(self.model.cfg.slices)[:-1])
        strings: list[bytes] = []

        def code(i: int, mu: np.ndarray, scales: np.ndarray) -> np.ndarray:
            symbols = np.round(slices[i] - mu)
            strings.append(self.model.y_coder.encode(symbols.astype(np.int32), scales))
            return symbols + mu

        with np.errstate(all="ignore"):
            latents = self.model.code_latents(z_hat, tokens, code, feat)
        img, d = self.img, self.enc.backend.dictionary
        f = ClcFile(img.width, img.height, self.enc.model_id, q, img.grayscale,
                    d.file_id if indices else NO_DICTIONARY, indices, 0, z_string, strings,
                    slices_total=len(self.model.cfg.slices), metadata={} if self.strip else dict(img.metadata),
                    alpha=self.alpha)
        return container.pack(f), latents


def padded(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H', W') in [0, 1], the last row and column repeated up to multiples of
    PAD_MULTIPLE (io.images.to_tensor and pad_to_multiple)."""
    x = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    h, w = x.shape[1:]
    return np.pad(x, ((0, 0), (0, -h % PAD_MULTIPLE), (0, -w % PAD_MULTIPLE)), mode="edge")
