"""GPU path and cross-device decoding. Skipped where no CUDA GPU is present (CI and the 2-core dev machines).

On a GPU machine: `python -m pytest tests/test_gpu.py`; the full Kodak cross-device run is
benchmarks/cross_device.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clccodec import Codec
from clccodec.model.exact import exact_mode
from clccodec.model.weights import load_weights

from .conftest import synthetic_photo

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def codecs(tiny_model_path):
    return Codec(tiny_model_path, False, "cpu"), Codec(tiny_model_path, False, "cuda")


def test_probability_path_is_bit_identical_on_gpu_and_cpu(tiny_model_path):
    m_cpu = load_weights(tiny_model_path, "cpu")
    m_gpu = load_weights(tiny_model_path, "cuda")
    torch.manual_seed(3)
    z_hat = (torch.randint(-8, 9, (1, m_cpu.cfg.Nz, 6, 9)) + 0.375).double()
    codes = torch.randint(-127, 128, (3, m_cpu.cfg.ref_channels, 16, 16), dtype=torch.int8)
    outs = []
    for m, dev in ((m_cpu, "cpu"), (m_gpu, "cuda")):
        with torch.no_grad(), exact_mode(torch.device(dev)):
            feat, y_a, _ = m._decoder_context(z_hat.to(dev), m._tokens(codes.to(dev)))
        outs.append((feat.cpu(), y_a.cpu()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("encode_on, decode_on", [(1, 0), (0, 1)])
def test_files_cross_devices(codecs, encode_on, decode_on):
    """Encoded on one device, decoded on the other: no desynchronisation, the encoder's pixels."""
    img = synthetic_photo(200, 264, seed=4)
    res = codecs[encode_on].encode_full(img, quality=5, refs=0, reconstruct=True, exact=True)
    pixels, _ = codecs[decode_on].decode_pixels(res.data, exact=True)
    assert np.array_equal(pixels, res.reconstruction)


def test_gpu_values_gather_matches_cpu(tmp_path, tiny_model_path):
    from PIL import Image

    from clccodec.dictionary.build import BuildOptions, build_dictionary

    for i in range(2):
        Image.fromarray(synthetic_photo(128, 128, seed=i)).save(tmp_path / f"p{i}.png")
    d, _ = build_dictionary(tmp_path, load_weights(tiny_model_path), BuildOptions(clusters=6, crop=64))
    idx = [3, 0, 5]
    assert torch.equal(d.values(idx, "cuda").cpu(), d.values(idx, "cpu"))
