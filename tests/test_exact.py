"""The probability path is exact: results do not depend on threads, chunking or batch composition."""

import torch

from clccodec.model.codec import CLCModel
from clccodec.model.config import TINY
from clccodec.model.exact import A_FRAC
from clccodec.model.weights import prepare_for_export


def make_model():
    torch.manual_seed(7)
    m = CLCModel(TINY)
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
