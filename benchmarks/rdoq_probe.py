"""Probe: rate-distortion optimised quantisation (RDOQ) of the latent at encode, as VTM's encoder does for its
coefficients: each nonzero symbol may move one step toward its mean when the bits it saves (its Gaussian's
probabilities) outweigh ALPHA times the distortion it adds (the synthesis's gain per channel, measured by finite
differences). Held-out training photos at full size (never Kodak), M = 0, real bytes and pixels; prints the
BD-rate of each ALPHA against plain rounding.

    python benchmarks/rdoq_probe.py 4 2,4,8      # 4 photos, ALPHA 2, 4 and 8

It patches SliceEntropyModel.compress for the run: an experiment, not an encoder option (docs/effort.md).
"""
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clccodec import Codec
from clccodec.evaluation.bd import bd_rate
from clccodec.model import entropy as E
from clccodec.model.codec import lambda_for_quality
from clccodec.model.exact import exact_mode
from clccodec.training.data import ImageSet

N_PHOTOS = int(sys.argv[1])
ALPHAS = [float(a) for a in sys.argv[2].split(",")]
QS = (1.0, 2.0, 3.0, 5.0, 8.0)
codec = Codec(None, dictionary=False, device="cpu")  # the shipped weights
model = codec.model
val = ImageSet.load(str(Path(__file__).resolve().parents[2] / "shared" / "data" / "train"), "val", 0.05, 64)
imgs = val.images[:N_PHOTOS]
STATE = {"alpha": 0.0, "q": 1.0, "w": None}


def channel_gains(q: float) -> torch.Tensor:
    """SSE (pixels in [0, 1]) per unit squared change of each scaled latent channel, by finite differences on
    a 256² crop of a held-out photo (sparse perturbations, 8 latent positions apart)."""
    x = torch.from_numpy(imgs[0][:256, :256]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y_s = model.scaled_latent(model.analyse(x, q), q)
        z = model._hyper_analyse(y_s)
        z_hat = model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(z), z.shape[-2:])
        with exact_mode(y_s.device):
            feat, y_a, late = model._decoder_context(z_hat.double(), None)
            _, y_hat, y_a = orig(model.entropy, y_s.double(), feat, y_a, late)
        base = model._reconstruct(y_hat, y_a, q, False)
        w = torch.zeros(y_hat.shape[1], dtype=torch.float64)
        eps = 0.5
        mask = torch.zeros_like(y_hat[:, :1])
        mask[..., 2::8, 2::8] = 1
        for c in range(y_hat.shape[1]):
            d = torch.zeros_like(y_hat)
            d[:, c : c + 1] = eps * mask
            out = model._reconstruct(y_hat + d, y_a, q, False)
            w[c] = float(((out - base).double() ** 2).sum()) / (eps**2 * float(mask.sum()))
    return w


orig = E.SliceEntropyModel.compress


def compress(self, y, feat, y_a, late=None, band=1 << 30):
    if STATE["alpha"] == 0:
        return orig(self, y, feat, y_a, late, band)
    ys, strings = y.split(self.slices, 1), []
    lam = float(lambda_for_quality(torch.tensor([STATE["q"]]))[0]) * 255**2 / 3 * STATE["alpha"]
    table = self.gaussian.scale_table.detach().double()
    w_all = STATE["w"].split(self.slices)

    def bits(k, sigma):  # the coder's discretised Gaussian (CompressAI's likelihood), around mean 0
        return -torch.log2(self.gaussian._likelihood(k, sigma).clamp_min(1e-12))

    def code(i, mu, idx):
        r = ys[i] - mu
        k0 = torch.round(r)
        k1 = k0 - torch.sign(k0)
        sigma = table[idx.long()].clamp_min(0.11)
        d = lam * w_all[i].view(1, -1, 1, 1) * ((r - k1) ** 2 - (r - k0) ** 2) + bits(k1, sigma) - bits(k0, sigma)
        k = torch.where((k0 != 0) & (d < 0), k1, k0)
        STATE["moved"] += int(((k0 != 0) & (d < 0)).sum())
        strings.append(self.gaussian.compress(k + mu, idx, means=mu)[0])
        return k + mu

    y_hat, y_a = self._code(feat, y_a, late, band, code)
    return strings, y_hat, y_a


E.SliceEntropyModel.compress = compress

gains = {q: channel_gains(q) for q in QS}
print("channel gains (min/median/max) per q:",
      {q: (round(float(g.min()), 4), round(float(g.median()), 4), round(float(g.max()), 4)) for q, g in gains.items()},
      flush=True)
res = {}
for alpha in [0.0] + ALPHAS:
    pts = []
    t0 = time.time()
    for q in QS:
        STATE.update(alpha=alpha, q=q, w=gains[q], moved=0)
        bpps, psnrs = [], []
        for img in imgs:
            data = codec.encode(img, q, 0)
            rec = np.asarray(codec.decode(data), dtype=np.float64)
            mse = float(np.mean((rec - img.astype(np.float64)) ** 2))
            bpps.append(8 * len(data) / (img.shape[0] * img.shape[1]))
            psnrs.append(10 * math.log10(255**2 / mse))
        pts.append((float(np.mean(bpps)), float(np.mean(psnrs)), STATE["moved"]))
    res[alpha] = pts
    line = f"alpha {alpha}: " + ", ".join(f"{b:.4f}/{p:.3f} ({m})" for b, p, m in pts)
    if alpha:
        r0 = res[0.0]
        bd = bd_rate([b for b, _, _ in r0], [p for _, p, _ in r0], [b for b, _, _ in pts], [p for _, p, _ in pts])
        bd3 = bd_rate([b for b, _, _ in r0[:4]], [p for _, p, _ in r0[:4]], [b for b, _, _ in pts[:4]],
                      [p for _, p, _ in pts[:4]])
        line += f" | BD-rate {bd:+.2f} % (q1-q5: {bd3:+.2f} %)"
    print(line + f" [{time.time() - t0:.0f}s]", flush=True)
