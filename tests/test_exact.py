"""The probability path is exact: results do not depend on threads, chunking or batch composition."""

import dataclasses

import numpy as np
import pytest
import torch

from clccodec.model.network import CLCModel
from clccodec.model.config import TINY
from clccodec.model.grids import A_FRAC
from clccodec.model.weights import prepare_for_export


def make_model(cfg=TINY):
    torch.manual_seed(7)
    m = CLCModel(cfg)
    prepare_for_export(m)
    return m.eval()


def context(m, z_hat, tokens, chunk):
    with torch.no_grad():
        feat = m.h_s(z_hat)
        return feat, m.clm(feat, tokens, chunk=chunk)


def test_outputs_lie_on_the_grid_and_ignore_threads_and_chunking():
    m = make_model()
    z_hat = (torch.randint(-6, 7, (1, TINY.Nz, 5, 7)) + 0.37).double()
    tokens = (torch.randint(-127, 128, (1, 3 * 16, TINY.ref_channels)) / 16).double()
    torch.set_num_threads(2)
    feat_a, ya_a = context(m, z_hat, tokens, chunk=4096)
    torch.set_num_threads(1)
    try:
        feat_b, ya_b = context(m, z_hat, tokens, chunk=7)
    finally:
        torch.set_num_threads(2)
    assert torch.equal(feat_a, feat_b) and torch.equal(ya_a, ya_b)
    for t in (feat_a, ya_a):
        assert torch.equal(t * 2**A_FRAC, torch.round(t * 2**A_FRAC))


def test_batch_composition_does_not_change_a_sample():
    m = make_model()
    z1 = (torch.randint(-6, 7, (1, TINY.Nz, 4, 4)) - 0.25).double()
    z2 = (torch.randint(-6, 7, (1, TINY.Nz, 4, 4)) + 0.5).double()
    tok = (torch.randint(-127, 128, (2, 32, TINY.ref_channels)) / 16).double()
    _, alone = context(m, z1, tok[:1], 4096)
    _, batched = context(m, torch.cat([z1, z2]), tok, 4096)
    assert torch.equal(alone[0], batched[0])


def test_entropy_parameters_are_identical_in_float64_whatever_the_summation_order():
    """Reversing the channel order of every input reorders each dot product; results must not move."""
    m = make_model()
    x = (torch.randint(-500, 500, (1, 40, 6, 6)) / 256).double()
    conv = m.entropy.param_nets[0][0]
    with torch.no_grad():
        ref = conv(x[:, : conv.in_channels])
        perm = torch.arange(conv.in_channels).flip(0)
        w = conv.weight.clone()
        conv.weight.copy_(w[:, perm])
        out = conv(x[:, : conv.in_channels][:, perm])
        conv.weight.copy_(w)
    assert torch.equal(ref, out)


@pytest.mark.parametrize("query_slices", [0, 1])
def test_banded_coding_gives_the_same_bytes_and_pixels(monkeypatch, query_slices):
    """Very large images are coded band by band (bands.py). Forcing tiny bands on a small image must give the
    same bytes (the probability path is exact, whatever the band) and the same pixels (so is the synthesis).
    With query_slices the CLM runs later, its 3x3 query on decoded slices: its halo must cover that too."""
    from clccodec.io.images import pad_to_multiple, to_tensor
    from clccodec.model import bands as bands_mod

    from .conftest import synthetic_photo

    m = make_model(dataclasses.replace(TINY, query_slices=query_slices))
    x = pad_to_multiple(to_tensor(synthetic_photo(300, 200)), 64)
    refs = torch.randint(-60, 60, (3, TINY.ref_channels, 16, 16), dtype=torch.int8)
    whole, rec_whole = m.compress(x, 3.5, refs, reconstruct=True, exact=True)
    monkeypatch.setattr(bands_mod, "LATENT_BAND", 8)  # 4-row bands of a 13-wide latent
    banded, rec_banded = m.compress(x, 3.5, refs, reconstruct=True, exact=True)
    assert banded == whole  # the same hyper-latent and slice strings
    assert torch.equal(rec_banded, rec_whole)
    monkeypatch.setattr(bands_mod, "PIXEL_BAND", 64 * 64)  # g_a in 64-pixel bands too
    monkeypatch.setattr(bands_mod, "SYNTHESIS_BAND", 64 * 64)  # and g_s (halo 3 latent rows)
    monkeypatch.setattr(bands_mod, "SYNTHESIS_MIN_ROWS", 64)
    assert torch.equal(m.decompress(whole, (300, 200), 3.5, refs, exact=True), rec_whole)  # banded synthesis too
    comp, rec = m.compress(x, 3.5, refs, reconstruct=True, exact=True)  # banded g_a (float: symbols may move)
    assert torch.equal(m.decompress(comp, (300, 200), 3.5, refs, exact=True), rec)


def test_map_bands_is_the_whole_computation():
    from clccodec.model.bands import map_bands

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, 2, 1))
    net = net.double()
    for rows in (96, 93, 90):  # (rows that the strides do not divide: the last output row is partial, and kept)
        x = torch.randn(1, 3, rows, 20, dtype=torch.float64)
        whole = net(x)
        for band in (4, 8, 12, 40):
            assert torch.allclose(map_bands(net, x, band, halo=8, down=4), whole, rtol=0, atol=1e-12)


def test_map_tiles_is_the_whole_computation():
    """Tiles along both axes, of even sizes, for sizes the tile does not divide (numpy arrays, as the encoder's)."""
    from clccodec.model.bands import map_tiles

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, 2, 1))
    net = net.double()

    def f(u):
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(u))[None])[0].numpy()

    for rows, cols in ((96, 52), (93, 90), (40, 130)):
        x = np.random.default_rng(rows).normal(size=(3, rows, cols))
        whole = f(x)
        for side in (16, 36, 200):
            assert np.allclose(map_tiles(f, x, side, halo=8, down=4), whole, rtol=0, atol=1e-12)


def test_exact_synthesis_tables_are_exact_and_sane():
    from decimal import Decimal

    from clccodec.model.synthesis import exact_inverse_gain, sigmoid_table

    t = sigmoid_table()
    n = (len(t) - 1) // 2
    assert t[n] == 0.5 and torch.all(t[1:] >= t[:-1])
    assert torch.equal(t + t.flip(0), torch.ones_like(t))  # sigmoid(-x) = 1 - sigmoid(x), on the grid
    assert torch.equal(t * 2**16, torch.round(t * 2**16))
    m = make_model()
    for q in (0.0, 0.5, 1.0, 2.5, 3.0 + 1 / 256, 8.0):  # below 1: extrapolated from levels 1 and 2
        exact = exact_inverse_gain(m.log_inv_gain, q)
        _, inv = m.gains(torch.tensor([q]))
        assert torch.allclose(exact.float(), inv, rtol=2e-5, atol=2**-16)
    assert Decimal(1)  # decimal is the only transcendental source


@pytest.mark.parametrize("rate_scales", [False, True])
def test_exact_synthesis_is_the_float_network_on_a_grid(rate_scales):
    """Same pixels whatever the threads or oneDNN; within float noise of the float synthesis (with the rate scales
    of g_s too)."""
    from clccodec.model.synthesis import PIXEL_ACT_FRAC as ACT_FRAC

    m = make_model(dataclasses.replace(TINY, rate_scales=rate_scales))
    if rate_scales:
        with torch.no_grad():  # trained scales: |log| 0.02-0.12 on average
            m.log_scale_s.normal_(0, 0.1)
    torch.manual_seed(5)
    y_hat_s = torch.randint(-20, 21, (1, TINY.latent_channels, 6, 5)).double() + torch.randint(-64, 64, (1, TINY.latent_channels, 6, 5)) / 256
    y_a = (torch.randint(-2000, 2000, (1, TINY.ref_out, 6, 5)) / 256).double()
    outs = []
    try:
        for onednn, threads in ((True, 2), (False, 1)):
            torch.backends.mkldnn.enabled = onednn
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs.append(m._reconstruct(y_hat_s, y_a, 4.25, exact=True))
    finally:
        torch.backends.mkldnn.enabled = True
        torch.set_num_threads(2)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0] * 2**ACT_FRAC, torch.round(outs[0] * 2**ACT_FRAC))
    with torch.no_grad():
        ref = m._synthesize(y_hat_s, y_a, m.gains(torch.tensor([4.25]))[1], torch.tensor([4.25])).clamp(0, 1)
    # the random tiny g_s swings to +-46 before the clamp, so grid noise is amplified far beyond what trained
    # weights see (< 0.001 dB there); it still stays under one 8-bit level
    assert (outs[0].float() - ref).abs().max() < 1 / 255


def test_fused_regridding_rounds_like_the_formula():
    """to_grid's fused no-grad path (fake_quantize) must round exactly like clamp * 2^f, round-half-even, / 2^f."""
    from clccodec.model.exact import to_grid

    torch.manual_seed(0)
    for dtype, frac, bound in ((torch.float64, 14, 256.0), (torch.float64, 12, 65536.0), (torch.float32, 8, 64.0)):
        k = torch.randint(-int(bound * 2**frac), int(bound * 2**frac), (4000,), dtype=torch.float64)
        ties = (k + 0.5) / 2**frac  # exact halfway points: half to even
        near = (k + 0.5 + torch.tensor([2.0**-20, -(2.0**-20)]).repeat(2000)) / 2**frac
        wide = torch.randn(4000, dtype=torch.float64) * bound * 1.5  # clamping too
        for x in (ties.to(dtype), near.to(dtype), wide.to(dtype)):
            with torch.no_grad():
                fused = to_grid(x, frac, bound)
            with torch.enable_grad():
                plain = to_grid(x, frac, bound)
            assert torch.equal(fused, plain.detach())


def test_late_references_leave_the_first_slices_alone_and_warm_start_exactly():
    """query_slices = 1: the first slice is coded without references (its string is the M = 0 one), the rest
    with them; converting weights without it (reconfigured) keeps the CLM's output as it was and M = 0 files
    byte for byte."""
    from clccodec.io.images import pad_to_multiple, to_tensor

    from .conftest import synthetic_photo

    m0 = make_model()
    m1 = m0.reconfigured(query_slices=1).eval()
    assert m1.cfg.query_slices == 1 and m1.clm.query.kernel_size == (3, 3)
    x = pad_to_multiple(to_tensor(synthetic_photo(130, 190)), 64)
    refs = torch.randint(-60, 60, (3, TINY.ref_channels, 16, 16), dtype=torch.int8)
    none0, _ = m0.compress(x, 4.0)
    none1, _ = m1.compress(x, 4.0)
    assert none1 == none0
    with_refs, rec = m1.compress(x, 4.0, refs, reconstruct=True, exact=True)
    assert with_refs.slices[0] == none1.slices[0]
    assert torch.equal(m1.decompress(with_refs, (130, 190), 4.0, refs, exact=True), rec)
    with torch.no_grad():
        z_hat = (torch.randint(-6, 7, (1, TINY.Nz, 3, 4)) + 0.37).double()
        tokens = m0._tokens(refs)
        _, y_a0, late0 = m0._decoder_context(z_hat, tokens)
        _, early, late1 = m1._decoder_context(z_hat, tokens)
        decoded = torch.randn(1, TINY.slices[0], 12, 16).double()
        assert late0 is None and torch.equal(late1(decoded), y_a0)  # the new query inputs start at zero
        assert not torch.equal(y_a0, early)  # the later slices do see the references
        assert torch.equal(early, m1._decoder_context(z_hat, None)[1])  # the first slice: the M = 0 context
    with pytest.raises(ValueError, match="query_slices can only be set"):
        m1.reconfigured(query_slices=0)
