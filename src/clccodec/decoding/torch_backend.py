"""The torch backend of the decoder (decoder.py): every file on every device, with the fast or the exact
synthesis, and the slices a file lacks filled (progressive.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..defaults import default_model_path
from ..dictionary.choice import fitting_dictionary
from ..format.container import ClcFile
from ..io.images import to_pixels
from ..model.device import no_tf32, resolve_device
from ..model.network import CLCModel
from ..model.rans import min_bits
from ..model.weights import load_weights, model_id


class TorchBackend:
    def __init__(self, net: CLCModel, device: torch.device, dictionary: Callable[[], Any]) -> None:
        """`dictionary()`: the loaded dictionary (or None), asked for only when a file has references."""
        self.net = net
        self.device = device
        self._dictionary = dictionary
        self.model_id = net.model_id
        self.slice_count = len(net.cfg.slices)
        self.slice_sizes = tuple(net.cfg.slices)
        eb = net.entropy_bottleneck
        self.hyper_min_bits = min_bits(eb._quantized_cdf.cpu().numpy(), eb._cdf_length.cpu().numpy())
        self.latent_min_bits = float(net.entropy.string_bits().min())

    @classmethod
    def load(cls, model: str | Path | CLCModel | None = None, dictionary: Any = None,
             device: str | torch.device = "auto") -> "TorchBackend":
        """A model (a weights path, None: the default one, or a CLCModel) on a device, and its dictionary
        (dictionary.choice.fitting_dictionary: a given one loads now, the default one when first needed)."""
        dev = resolve_device(device)
        if isinstance(model, CLCModel):
            net = model.to(dev).eval()
            if not hasattr(net, "model_id"):
                net.model_id = model_id(net)
        else:
            net = load_weights(model or default_model_path(), dev)
        loaded: list[Any] = []

        def the_dictionary() -> Any:
            if not loaded:
                from ..dictionary.store import ReferenceDictionary

                loaded.append(fitting_dictionary(dictionary, net.model_id, ReferenceDictionary.load))
            return loaded[0]

        if dictionary is not None:
            the_dictionary()
        return cls(net, dev, the_dictionary)

    @property
    def dictionary(self) -> Any:
        return self._dictionary()

    def references(self, indices: list[int]) -> torch.Tensor:
        return self.dictionary.values(indices, self.device)  # checks the indices

    @torch.inference_mode()
    def pixels(self, f: ClcFile, codes: torch.Tensor | None, exact: bool, detail: str, seed: int) -> np.ndarray:
        size = (f.height, f.width)
        with no_tf32():
            if f.slices_present == f.slices_total:
                x_hat = self.net.decompress(f, size, f.quality, codes, self.device, exact)
            else:
                from .progressive import decompress_prefix

                x_hat = decompress_prefix(self.net, f, size, f.quality, codes, self.device, detail, seed, exact=exact)
        return to_pixels(x_hat[..., : f.height, : f.width])
