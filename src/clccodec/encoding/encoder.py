"""One image's encodes at any quality and effort: the machinery behind Codec.encode_full.

The retrieval query (the plain analysis y) and the retrieved references do not depend on the quality, nor does
the latent that is coded unless the model has rate scales (then g_a is scaled for each quality), so a rate-control
search (ratecontrol.py) computes them once; each probe then codes at its quality with the
effort's plan (effort.py): the plain encoder, reference selection by real cost, latent refinement (refine.py).
With a dictionary that holds pictures, every encode also tries predicting blocks from them (blockcopy.py: the
pictures' detail added, or blocks copied) and keeps that file only if its real cost is lower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from . import blockcopy
from ..format import container, copysection
from ..format.alpha import pack_alpha
from ..format.container import ClcFile
from ..model.rans import EntropyStrings
from ..model.device import no_tf32
from .effort import Progress, effort_plan, rd_cost
from ..format.ids import NO_DICTIONARY
from ..io.images import LoadedImage, pad_to_multiple, to_pixels, to_tensor
from ..model.config import PAD_MULTIPLE
from .ratecontrol import SearchResult, Target, search_quality

REFINED_PROBES = 4  # full-effort encodes after a rough search (latent refinement moves the rate a little)


@dataclass
class CodedFile:
    data: bytes
    pixels: np.ndarray | None  # the decoder's pixels (uint8 HxWx3) with the synthesis asked for
    quality: float
    refs: int


class ImageEncoder:
    """One image's encodes at any quality and effort, sharing what does not depend on the quality: the
    retrieval query, the retrieved references and (without rate scales) the analysis. `codec`: the api.Codec whose
    model, dictionary, device and model id to use (not imported here: api imports this module)."""

    def __init__(self, codec: Any, img: LoadedImage, x: torch.Tensor, refs: int, effort: int,
                 slices: int | None, strip: bool, progress: Progress | None,
                 indices: list[int] | None = None, fallback: bool = True) -> None:
        """`indices`: the references, when already retrieved (for the image block copy codes, whose
        references are the source image's). `fallback`: effort.effort_plan's."""
        self.codec, self.model, self.img, self.x = codec, codec.model, img, x
        self.refs, self.fallback = refs, fallback
        self.plan = effort_plan(effort, refs if codec.dictionary is not None else 0, fallback)
        self.effort, self.slices, self.strip, self.progress = effort, slices, strip, progress
        self._latent: tuple[float | None, torch.Tensor] | None = None  # the last analysis (quality, y)
        self.indices: list[int] = []
        most = max(self.plan.refs)
        if most:
            # the count asked for (or the most an effort tries): the smaller counts tried are its prefixes
            self.indices = indices if indices is not None else codec.dictionary.retrieve(self.model, x, most,
                                                                                         latent=self.latent(None))
        preview = slices is not None and slices < len(self.model.cfg.slices)
        self.copies = bool(most and indices is None and not preview and not img.grayscale
                           and img.width * img.height <= blockcopy.MAX_SEARCH_PIXELS and len(codec.dictionary.pictures))
        self._matches: blockcopy.Matches | None = None
        self._own_detail: np.ndarray | None = None
        self.alpha = pack_alpha(img.alpha) if img.alpha is not None else b""  # the same section at every quality

    def latent(self, q: float | None) -> torch.Tensor:
        """The analysis latent that quality q codes (None: the plain one, the retrieval query), the last one kept:
        without rate scales they are all the same latent, computed once."""
        key = q if self.model.cfg.rate_scales else None
        if self._latent is None or self._latent[0] != key:
            self._latent = (key, self.model.analyse(self.x, key))
        return self._latent[1]

    def _codes(self, m: int) -> torch.Tensor | None:
        return self.codec.dictionary.values(self.indices[:m], self.codec.device) if m else None

    def _pack(self, streams: EntropyStrings, q: float, m: int, x_hat: torch.Tensor | None,
              reconstruct: bool, exact: bool, full: bool = False) -> CodedFile:
        """The file (a preview keeps the first `slices` strings unless `full`) and the decoder's pixels if asked
        for (x_hat: those of the full file)."""
        n_slices = len(self.model.cfg.slices)
        if self.slices is not None and self.slices < n_slices and not full:
            from ..decoding.progressive import decompress_prefix

            streams = EntropyStrings(streams.hyper, streams.slices[: self.slices])
            x_hat = None
            if reconstruct:
                x_hat = decompress_prefix(self.model, streams, (self.img.height, self.img.width), q, self._codes(m),
                                          self.codec.device, exact=exact)
        indices = self.indices[:m]
        f = ClcFile(self.img.width, self.img.height, self.codec.model_id, q, self.img.grayscale,
                    self.codec.dictionary.file_id if indices else NO_DICTIONARY, indices, 0, streams.hyper, streams.slices,
                    slices_total=n_slices, metadata={} if self.strip else dict(self.img.metadata), alpha=self.alpha)
        pixels = to_pixels(x_hat[..., : self.img.height, : self.img.width]) if x_hat is not None else None
        return CodedFile(container.pack(f), pixels, q, len(indices))

    def encode(self, q: float, reconstruct: bool = False, exact: bool = False, effort: int | None = None) -> CodedFile:
        """The file at quality q (on the container's grid); `effort` below the encoder's own, for cheap probes."""
        if not self.copies:
            return self._encode_coded(q, reconstruct, exact, effort)
        base = self._encode_coded(q, True, exact, effort)  # the section is judged against the plain file
        best = base
        predicted = self._with_prediction(q, exact, effort)
        if predicted is not None and self._real_cost(predicted, q) < self._real_cost(base, q):
            best = predicted
        return best if reconstruct else CodedFile(best.data, None, best.quality, best.refs)

    def _real_cost(self, r: CodedFile, q: float) -> float:
        assert r.pixels is not None
        return rd_cost(self.img.pixels, r.pixels, len(r.data), q)

    def _find_matches(self) -> blockcopy.Matches:
        """The best match of every block's detail among the M most useful pictures, to a quarter pixel (computed
        once per image)."""
        if self._matches is None:
            pics = self.codec.dictionary.pictures
            ranked = blockcopy.rank_pictures(blockcopy.to_unit(self.img.pixels), pics.thumbnails())
            chosen = ranked[: max(self.plan.refs)]
            own, dets = self._detail(), [pics.detail(i) for i in chosen]
            m = blockcopy.find_matches(blockcopy.detail_unit(own), [blockcopy.detail_unit(d) for d in dets], chosen)
            self._matches = blockcopy.refine_quarter(m, own, dets)
        return self._matches

    def _detail(self) -> np.ndarray:
        """The source's detail (copysection.detail), computed once per image."""
        if self._own_detail is None:
            self._own_detail = copysection.detail(self.img.pixels)
        return self._own_detail

    def _with_prediction(self, q: float, exact: bool, effort: int | None) -> CodedFile | None:
        """The file with a copy section: the blocks whose match removes most of their detail are coded without
        the matched detail, which the decoder adds back; then the blocks that a plain copy serves better are
        copied. None if no block is predicted."""
        m = self._find_matches()
        source = self.img.pixels
        own = self._detail()
        bc = m.section_for(m.mse < blockcopy.DETAIL_SHARE * blockcopy.block_energy(own, m.block))
        if bc is None:
            return None
        pics = self.codec.dictionary.pictures
        listed = [pics.pixels(p) for p in bc.pictures]
        details = [pics.detail(p) for p in bc.pictures]
        side = blockcopy.block_bits_as_mse(q, m.block)  # a displacement or a copy must gain what it costs to signal
        bc = blockcopy.prefer_predicted(bc, own, m.mse + side, details)
        add = copysection.added_detail(bc, dict(enumerate(details)), self.img.height, self.img.width)
        rest = np.clip(source.astype(np.int16) - add, 0, 255).astype(np.uint8)  # what the codec codes
        x = pad_to_multiple(to_tensor(rest, self.x.device), PAD_MULTIPLE)
        # the image the codec codes is `rest`: the costs that choose references or keep a refinement compare with it
        sub = ImageEncoder(self.codec, replace(self.img, pixels=rest), x, self.refs, self.effort, self.slices,
                           self.strip, self.progress, indices=self.indices, fallback=self.fallback)
        coded = sub._encode_coded(q, True, exact, effort, need_refs=True)
        assert coded.pixels is not None and coded.refs
        decoded = copysection.paste(coded.pixels, bc, listed, details)
        bc = blockcopy.copy_where_better(bc, source, decoded, listed, side)
        f = container.unpack(coded.data)
        f.block_copy = copysection.pack(bc)
        return CodedFile(container.pack(f), copysection.paste(coded.pixels, bc, listed, details), q, coded.refs)

    def _encode_coded(self, q: float, reconstruct: bool, exact: bool, effort: int | None,
                      need_refs: bool = False) -> CodedFile:
        """The file without block copy (`need_refs`: one that uses references, for a copy section)."""
        plan = self.plan if effort is None else effort_plan(effort, max(self.plan.refs), self.fallback)
        if need_refs:
            plan = replace(plan, refs=tuple(m for m in plan.refs if m) or plan.refs)
        preview = self.slices is not None and self.slices < len(self.model.cfg.slices)
        with no_tf32():
            if len(plan.refs) == 1 and not plan.iterations:  # one reference count: code it once
                m = plan.refs[0]
                streams, x_hat = self.model.compress(self.x, q, self._codes(m), reconstruct and not preview, exact,
                                                     self.latent(q))
                return self._pack(streams, q, m, x_hat, reconstruct, exact)
            y_s = self.model.scaled_latent(self.latent(q), q)
            z = self.model._hyper_analyse(y_s)
            best: tuple[float, EntropyStrings, torch.Tensor | None, int] | None = None
            for m in plan.refs:  # choose the reference count by the real cost (or size) of the full file
                streams, x_hat = self.model.code_latents(y_s, z, q, self._codes(m), plan.by_cost)
                cost = self._cost(streams, q, m, x_hat) if x_hat is not None else self._size(streams, q, m)
                if best is None or cost < best[0]:
                    best = (cost, streams, x_hat, m)
            assert best is not None
            cost, streams, x_hat, m = best
            if plan.iterations:
                from .refine import refine_latents

                codes = self._codes(m)
                with torch.inference_mode(False), torch.enable_grad():
                    y_r, z_r = refine_latents(self.model, self.x.clone(), y_s.clone(), q,
                                              None if codes is None else codes.clone(), plan.iterations,
                                              self.progress, z=z)
                streams_r, x_hat_r = self.model.code_latents(y_r, z_r, q, codes, True)
                if self._cost(streams_r, q, m, x_hat_r) < cost:  # kept only if the real file is better
                    y_s, z, streams, x_hat = y_r, z_r, streams_r, x_hat_r
            if reconstruct and not preview and (exact or x_hat is None):
                streams, x_hat = self.model.code_latents(y_s, z, q, self._codes(m), True, exact)
            return self._pack(streams, q, m, x_hat if reconstruct else None, reconstruct, exact)

    def _size(self, streams: EntropyStrings, q: float, m: int) -> int:
        return len(self._pack(streams, q, m, None, False, False, full=True).data)

    def _cost(self, streams: EntropyStrings, q: float, m: int, x_hat: torch.Tensor) -> float:
        n_bytes = self._size(streams, q, m)
        pixels = to_pixels(x_hat[..., : self.img.height, : self.img.width])
        return rd_cost(self.img.pixels, pixels, n_bytes, q)

    def search(self, target: Target) -> SearchResult[CodedFile]:
        """The quality that meets `target` (ratecontrol.py). With latent refinement (effort >= 3) the search
        runs without it first and then closes in with full-effort encodes from the quality it found."""
        need_pixels = target.kind == "psnr"

        def measure(r: CodedFile) -> float:
            if target.kind == "size":
                return float(len(r.data))
            if target.kind == "bpp":
                return 8 * len(r.data) / (self.img.width * self.img.height)
            from ..evaluation.metrics import psnr

            return psnr(self.img.pixels, r.pixels)

        def at(effort: int | None) -> Callable[[float], tuple[float, CodedFile]]:
            def encode_at(q: float) -> tuple[float, CodedFile]:
                r = self.encode(q, reconstruct=need_pixels, effort=effort)
                return measure(r), r
            return encode_at

        if not self.plan.iterations:
            return search_quality(target, at(None))
        rough = search_quality(target, at(min(self.effort, 2)))
        return search_quality(target, at(None), start=rough.best.quality, max_probes=REFINED_PROBES)
