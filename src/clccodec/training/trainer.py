"""Variable-rate CLC training: loss = lambda(q) * 255^2 * MSE + bpp, q = 1 + 7 u^P per sample
(u uniform; P = 1 by default), each sample's loss weighed by quality_weight(q, --q-balance) (1 by default).

Single process on CPU or GPU, or several processes under torchrun (DDP: one per GPU, or per CPU core with gloo).
Checkpoints hold everything needed for an exact resume: model, optimisers, step, every RNG (rank 0's: under DDP
the other ranks reseed from the step), and the g_a weights the reference bank was last refreshed with (the bank
is rebuilt from them, bit for bit). Validation uses a held-out split of the training photos,
never Kodak; `best.pt` is chosen on it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from ..model.device import resolve_device
from ..errors import UsageError
from ..model.config import PAD_MULTIPLE
from ..model.network import CLCModel
from ..model.config import CONFIGS
from ..model.weights import load_weights
from ..model.quality import LAMBDAS, QUALITY_MAX, TRAINED_MIN, lambda_for_quality, rd_objective
from .config import TrainConfig
from .data import ImageSet
from .refbank import ReferenceBank

RATE_SCALE_LR_MULT = 100.0
# ... but at most this: the campaign's 1.5e-3 (x100 of 1.5e-5) has been stable; a GPU run's 1e-4 would give 1e-2
RATE_SCALE_LR_MAX = 2e-3

__all__ = ["TrainConfig", "Trainer", "rd_loss", "train"]

VAL_QUALITIES = (1.0, 3.0, 5.0, 8.0)
OVERLAP_JITTER = 0.1  # colour gain/offset of an overlapping reference window (data.ImageSet.windows_around)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds this device up. On a CPU without AVX-512 BF16/AMX, oneDNN emulates bf16
    convolutions and a training step is ~16x slower than in float32 (measured on an AVX2-only EPYC)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def _bpp(lik: Tensor, pixels: int) -> Tensor:
    return -torch.log2(lik.float()).flatten(1).sum(1) / pixels


def rd_loss(out: dict, x: Tensor, q: Tensor, balance: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-sample lambda * 255^2 * MSE + bpp, averaged; also the mean bpp, the mean MSE and the loss to minimise:
    the same mean with each sample weighted by quality_weight(q, balance)."""
    pixels = x.shape[2] * x.shape[3]
    bpp = sum(_bpp(lik, pixels) for lik in out["likelihoods"].values())
    mse = (out["x_hat"].float() - x).pow(2).flatten(1).mean(1)
    per_sample = rd_objective(lambda_for_quality(q), mse, bpp)
    loss = per_sample.mean()
    weighted = loss if not balance else (per_sample * quality_weight(q, balance)).mean()
    return loss, bpp.mean(), mse.mean(), weighted


def quality_weight(q: Tensor, balance: float) -> Tensor:
    """(lambda(q) / lambda_mid)^-balance, lambda_mid the ladder's geometric middle. One model for every rate sums
    losses that grow ~12x from q 1 to q 8 (bpp and lambda * MSE both grow), so the top rates steer the shared
    transforms; balance ~0.5 gives each quality about the same weight, as separately trained models have."""
    mid = math.sqrt(LAMBDAS[0] * LAMBDAS[-1])
    return (lambda_for_quality(q) / mid) ** -balance


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(cfg.device, local_rank)
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = True  # training only: coding never runs here
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        if not cfg.data:
            raise UsageError("no training photos given (TrainConfig.data: a folder of photos)")
        if cfg.q_balance < 0:
            raise UsageError(f"--q-balance must be 0 or more, got {cfg.q_balance:g}")
        if cfg.q_power <= 0:
            raise UsageError(f"--q-power must be positive, got {cfg.q_power:g}")
        if cfg.schedule not in ("step", "cosine"):
            raise UsageError(f"unknown learning-rate schedule '{cfg.schedule}' (use step or cosine)")
        if cfg.anneal and (cfg.schedule != "step" or cfg.anneal > cfg.steps):
            raise UsageError(f"--anneal {cfg.anneal} needs the step schedule and at most --steps ({cfg.steps}) steps")
        self.amp = fast_bf16(self.device) if cfg.amp is None else cfg.amp
        self.out = Path(cfg.out)
        self.main = self.rank == 0
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)

        self.train_set = ImageSet.load(cfg.data, "train", cfg.val_fraction, max(cfg.crop_min or cfg.crop, cfg.ref_crop),
                                       cfg.downscale_glob)
        self.val_set = ImageSet.load(cfg.data, "val", cfg.val_fraction, cfg.val_crop, cfg.downscale_glob)
        if len(self.train_set) < 2:
            raise UsageError(f"need at least 2 training images under {cfg.data}")
        self.bank = ReferenceBank(self.train_set, cfg.ref_crop, cfg.ref_per_image, seed=cfg.seed + 1)
        self.refs_max = min(cfg.refs_max, len(self.bank) - cfg.ref_per_image)

        # seed before building the model: same seed, same initial weights (per rank: different data and noise)
        self._seed(cfg.seed + 1000 * self.rank)
        if cfg.init:
            self.model = load_weights(cfg.init).train()
        else:
            self.model = CLCModel(CONFIGS[cfg.config])
        changes = {}
        if cfg.null_prior and not self.model.cfg.null_prior:
            changes["null_prior"] = True
        if cfg.query_slices is not None and cfg.query_slices != self.model.cfg.query_slices:
            changes["query_slices"] = cfg.query_slices
        if cfg.rate_scales and not self.model.cfg.rate_scales:
            changes["rate_scales"] = True
        if changes:
            self.model = self.model.reconfigured(**changes).train()
        self.model.to(self.device)
        # channels_last: oneDNN / cuDNN convolutions run faster on it (CPU: g_a + g_s forward+backward -25 %)
        self.model.g_a.to(memory_format=torch.channels_last)
        self.model.g_s.to(memory_format=torch.channels_last)
        if cfg.compile:
            # the transforms' training path through inductor (GDN, rate scales and casts fused): one graph per
            # input shape and grad mode, compiled on first use; off by default (tens of seconds per graph)
            self.model._scaled = torch.compile(self.model._scaled)
        aux = {id(self.model.entropy_bottleneck.quantiles)}  # CompressAI's auxiliary (CDF range) parameter
        self._freeze_all_but(cfg.train_only, keep=aux)
        main_params = [p for p in self.model.parameters() if id(p) not in aux and p.requires_grad]
        aux_params = [p for p in self.model.parameters() if id(p) in aux]
        self.main_params = main_params
        # the rate scales (few, new) learn RATE_SCALE_LR_MULT x faster than the rest: at the campaign's rate they
        # would take tens of thousands of steps to move
        scales = {id(getattr(self.model, n)) for n in ("log_scale_a", "log_scale_s") if hasattr(self.model, n)}
        groups = [{"params": [p for p in main_params if id(p) not in scales]}]
        if scales:
            groups.append({"params": [p for p in main_params if id(p) in scales], "lr_mult": RATE_SCALE_LR_MULT})
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, foreach=True)
        self.aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
        self.ema = ({n: p.detach().clone() for n, p in self.model.named_parameters() if id(p) not in aux}
                    if cfg.ema else None)
        self.ddp = None
        if self.world > 1:
            # the auxiliary parameter learns from aux_loss, a second backward outside DDP's forward: DDP must not
            # sync it (its hook would fire twice); train_step averages its gradient by hand
            DDP = torch.nn.parallel.DistributedDataParallel
            DDP._set_params_and_buffers_to_ignore_for_model(
                self.model, [n for n, p in self.model.named_parameters() if id(p) in aux])
            # find_unused_parameters: each rank draws its own reference count, and with none the reference path
            # gets no gradient there
            self.ddp = DDP(self.model, device_ids=[local_rank] if self.device.type == "cuda" else None,
                           find_unused_parameters=True)
        self.aux_params = aux_params
        self.step = 0
        self.best = math.inf
        self.val_step = -1  # the step last validated: the final step is always validated, exactly once
        self.bank_g_a: dict | None = None
        self._resume()

    def _seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        random.seed(seed)

    def _freeze_all_but(self, modules: str, keep: set[int]) -> None:
        """Only the parameters of these top-level modules or parameters (comma-separated names), and those in
        `keep` (ids), learn; '' leaves every parameter learning."""
        names = {m.strip() for m in modules.split(",") if m.strip()}
        if not names:
            return
        top = {n.split(".")[0] for n, _ in self.model.named_parameters()}
        unknown = sorted(names - top)
        if unknown:
            raise UsageError(f"--train-only: no module '{unknown[0]}' in the model (known: {', '.join(sorted(top))})")
        for n, p in self.model.named_parameters():
            p.requires_grad_(n.split(".")[0] in names or id(p) in keep)

    # -- checkpoints -------------------------------------------------------------------------------------------

    def _ckpt_path(self) -> Path:
        return self.out / "last.pt"

    def _save(self, path: Path, full: bool = True) -> None:
        if not self.main:
            return
        model_state = self.model.state_dict()
        if self.ema is not None and not full:  # best.pt (what gets exported) holds the averaged weights
            model_state |= {n: t.clone() for n, t in self.ema.items()}
        state = {"model": model_state, "model_cfg": self.model.cfg.to_dict(), "train_cfg": dataclasses.asdict(self.cfg),
                 "step": self.step, "best": self.best, "val_step": self.val_step}
        if full:
            state |= {"ema": self.ema, "opt": self.opt.state_dict(), "aux_opt": self.aux_opt.state_dict(),
                      "bank_g_a": self.bank_g_a, "rng_numpy": self.rng.bit_generator.state,
                      "rng_torch": torch.get_rng_state(), "rng_python": random.getstate(),
                      "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _resume(self) -> None:
        path = self._ckpt_path()
        if not path.exists():
            return
        st = torch.load(path, map_location="cpu", weights_only=False)
        added = [n for n in self.model.state_dict() if n not in st["model"]]  # a warm-start field switched on now
        for n in added:
            st["model"][n] = self.model.state_dict()[n]
        self.model.load_state_dict(st["model"])  # CLCModel's: sizes the CDF buffers first
        groups = st["opt"]["param_groups"]
        if len(groups) < len(self.opt.param_groups):  # rate scales switched on now: their group starts empty
            n_old = len(groups[0]["params"])
            new = self.opt.param_groups[1]
            groups.append({**groups[0], "params": list(range(n_old, n_old + len(new["params"]))),
                           "lr_mult": new["lr_mult"]})
        self.opt.load_state_dict(st["opt"])
        self.aux_opt.load_state_dict(st["aux_opt"])
        self.step, self.best = st["step"], st["best"]
        self.val_step = st.get("val_step", -1)
        if self.rank == 0:
            self.rng.bit_generator.state = st["rng_numpy"]
            torch.set_rng_state(st["rng_torch"])
            random.setstate(st["rng_python"])
            if st.get("rng_cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(st["rng_cuda"])
        else:  # the checkpoint holds rank 0's streams: the others must not draw the same crops and noise
            self._seed(self.cfg.seed + 1000 * self.rank + 7919 * self.step)
        self.bank_g_a = st["bank_g_a"]
        if self.ema is not None:
            # a run that switches EMA on mid-way starts the average from its current weights
            for n, t in (st.get("ema") or {}).items():
                self.ema[n].copy_(t)
            for n in added:
                if n in self.ema:
                    self.ema[n].copy_(self.model.state_dict()[n])
            if not st.get("ema"):
                for n, p in self.model.named_parameters():
                    if n in self.ema:
                        self.ema[n].copy_(p.detach())
        if self.bank_g_a is not None and self.step % self.cfg.refresh_every:
            # mid-period: rebuild the bank the interrupted run was using (at a boundary run() refreshes anyway)
            self._refresh_bank(from_state=True)
        self._log({"event": "resume", "step": self.step})

    # -- pieces ------------------------------------------------------------------------------------------------

    def _refresh_bank(self, from_state: bool = False) -> None:
        if not from_state:
            self.bank_g_a = {k: v.detach().cpu().clone() for k, v in self.model.g_a.state_dict().items()}
        g_a = copy.deepcopy(self.model.g_a)  # (building a fresh module would consume RNG: no exact resume)
        g_a.load_state_dict(self.bank_g_a)
        self.bank.refresh(g_a.to(self.device).eval(), self.device, self.amp)

    def _lr(self) -> float:
        cfg = self.cfg
        if self.step < cfg.warmup:
            return cfg.lr * (self.step + 1) / cfg.warmup
        if cfg.anneal:  # flat, then a cosine tail: forks a constant-rate run into a release
            t = max(0.0, (self.step - (cfg.steps - cfg.anneal)) / cfg.anneal)
            return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
        if cfg.schedule == "cosine":
            t = (self.step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
            return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
        return cfg.lr * (0.1 if self.step >= cfg.lr_decay_at * cfg.steps else 1.0)

    @torch.no_grad()
    def _update_ema(self) -> None:
        names = list(self.ema)
        params = dict(self.model.named_parameters())
        torch._foreach_lerp_([self.ema[n] for n in names], [params[n].detach() for n in names], 1 - self.cfg.ema)

    def _swap_ema(self) -> None:
        """Exchange the live weights and the averaged ones (validation runs on the average)."""
        if self.ema is None:
            return
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if n in self.ema:
                    tmp = p.detach().clone()
                    p.copy_(self.ema[n])
                    self.ema[n].copy_(tmp)

    def _sample_quality(self) -> Tensor:
        if self.cfg.quality is not None:
            return torch.full((self.cfg.batch,), float(self.cfg.quality))
        u = self.rng.uniform(0.0, 1.0, self.cfg.batch) ** self.cfg.q_power  # one draw per crop, as before: resumable
        return torch.from_numpy(TRAINED_MIN + (QUALITY_MAX - TRAINED_MIN) * u).float()

    def _log(self, rec: dict) -> None:
        if not self.main:
            return
        rec = {"time": round(time.time(), 1)} | rec
        print(json.dumps(rec), flush=True)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def train_step(self) -> dict:
        cfg = self.cfg
        boxes = self.train_set.random_boxes(self.rng, cfg.batch, cfg.crop, PAD_MULTIPLE if cfg.crop_min else 0)
        x, src = self.train_set.cut(boxes), self.train_set.sources(boxes)
        x = x.to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
        q = self._sample_quality().to(self.device)
        m = 0 if self.rng.random() < cfg.p_no_refs else int(self.rng.integers(1, self.refs_max + 1))
        # (drawn only when enabled: runs without them keep their random stream, so they resume exactly)
        related = bool(m and cfg.p_related and self.rng.random() < cfg.p_related)
        overlap = bool(m and cfg.p_overlap and self.rng.random() < cfg.p_overlap)
        windows = (self.train_set.windows_around(self.rng, boxes, cfg.ref_crop, OVERLAP_JITTER).to(self.device)
                   if overlap else None)

        def ref_values(y: Tensor) -> Tensor | None:
            if m == 0:
                return None
            rest = m - overlap
            v = self.bank.values(self.model.value_proj, self.bank.retrieve(y, rest, src, related)) if rest else None
            if windows is None:
                return v
            with torch.no_grad():  # like the bank's latents: the reference side gets no analysis gradient
                lat = self.model.g_a(windows).float()
            first = self.model.value_proj(lat).unsqueeze(1)
            return first if v is None else torch.cat([first, v], 1)

        net = self.ddp or self.model
        for g in self.opt.param_groups:
            # the rate scales' group: lr_mult times faster, capped
            g["lr"] = min(self._lr() * g["lr_mult"], RATE_SCALE_LR_MAX) if "lr_mult" in g else self._lr()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = net(x, q, ref_values, hard_rate=cfg.hard_rate)
        loss, bpp, mse, weighted = rd_loss(out, x, q, cfg.q_balance)
        match = self.model.match_loss(out) if cfg.match_weight else None
        self.opt.zero_grad(set_to_none=True)
        (weighted if match is None else weighted + cfg.match_weight * match).backward()
        # main parameters only: the auxiliary parameter still holds the previous step's aux gradient here
        gn = torch.nn.utils.clip_grad_norm_(self.main_params, 1.0)
        self.opt.step()
        aux = self.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        if self.world > 1:
            for p in self.aux_params:
                dist.all_reduce(p.grad)
                p.grad /= self.world
        self.aux_opt.step()
        if self.ema is not None:
            self._update_ema()
        return {"loss": loss.item(), "bpp": bpp.item(), "psnr": -10 * math.log10(max(mse.item(), 1e-10)),
                "m": m, "related": float(related), "overlap": float(overlap), "gn": float(gn), "aux": aux.item(),
                **({"match": match.item()} if match is not None else {})}

    @torch.no_grad()
    def validate(self) -> dict:
        """Likelihood bpp and PSNR on held-out photos (centre crops), with M = 3 retrieved references."""
        self._swap_ema()
        self.model.eval()
        res = {}
        total = 0.0
        qualities = VAL_QUALITIES if self.cfg.quality is None else (self.cfg.quality,)
        for qv in qualities:
            bpps, mses = [], []
            for i in range(len(self.val_set)):
                x = self.val_set.center_crop(i, self.cfg.val_crop).to(self.device)
                q = torch.tensor([qv], device=self.device)

                def ref_values(y: Tensor) -> Tensor:
                    return self.bank.values(self.model.value_proj, self.bank.retrieve(y, 3, None))

                out = self.model(x, q, ref_values)
                _, bpp, mse, _ = rd_loss(out, x, q)
                bpps.append(bpp.item())
                mses.append(out["x_hat"].clamp(0, 1).sub(x).pow(2).mean().item())
            b = float(np.mean(bpps))
            psnr = float(np.mean([-10 * math.log10(max(v, 1e-10)) for v in mses]))
            total += rd_objective(float(lambda_for_quality(torch.tensor(qv))), float(np.mean(mses)), b)
            res[f"q{qv:g}"] = {"bpp": round(b, 4), "psnr": round(psnr, 3)}
        self.model.train()
        self._swap_ema()
        return {"val_loss": total / len(qualities), **res}

    # -- loop --------------------------------------------------------------------------------------------------

    def run(self) -> str:
        """Train to cfg.steps. Returns why it stopped: "done", "time limit", or the name of the signal (SIGINT,
        SIGTERM) that asked it to stop; in every case the last step is checkpointed, so the same command resumes."""
        with _stop_on_signals() as asked:
            return self._loop(asked)

    def _loop(self, asked: list[str]) -> str:
        cfg = self.cfg
        t0 = time.time()
        self._log({"event": "start", "step": self.step, "train_images": len(self.train_set),
                   "val_images": len(self.val_set), "bank": len(self.bank), "device": str(self.device),
                   "world": self.world})
        self.model.train()
        acc: list[dict] = []
        t_last = time.time()
        while self.step < cfg.steps:
            if self.step % cfg.refresh_every == 0 or self.bank.latents is None:
                self._refresh_bank()
            acc.append(self.train_step())
            self.step += 1
            if self.step % cfg.log_every == 0:
                rec = {k: round(float(np.mean([a[k] for a in acc])), 4) for k in acc[0] if k != "m"}
                rec["steps_per_s"] = round(len(acc) / (time.time() - t_last), 3)
                self._log({"step": self.step, "lr": self._lr(), **rec})
                acc, t_last = [], time.time()
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                self._validate_and_keep_best()
            reason = asked[0] if asked else None
            if reason is None and cfg.max_minutes and (time.time() - t0) > cfg.max_minutes * 60:
                reason = "time limit"
            if self.world > 1:  # rank 0 decides: a rank that stopped alone would leave the others hanging
                flag = torch.tensor([_STOP_REASONS.index(reason)], device=self.device)
                dist.broadcast(flag, 0)
                reason = _STOP_REASONS[int(flag.item())]
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or reason:
                self._save(self._ckpt_path())
            if reason:
                why = {"event": "time limit"} if reason == "time limit" else {"event": "interrupted", "signal": reason}
                self._log({**why, "step": self.step})
                break
        else:
            reason = "done"
        if self.step >= cfg.steps and self.val_step != self.step:
            # a run that ended before the final step was validated (older checkpoints): validate it now, with
            # the reference bank the last training steps used
            if self.bank.latents is None:
                self._refresh_bank(from_state=self.bank_g_a is not None)
            self._validate_and_keep_best()
            self._save(self._ckpt_path())
        if self.world > 1:
            # free DDP's reducer before the group goes, and let no rank tear the group down while a peer still
            # uses it (gloo aborts the process otherwise)
            self.ddp = None
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()
        return reason

    def _validate_and_keep_best(self) -> None:
        if not (self.main and len(self.val_set)):
            return
        v = self.validate()
        self.val_step = self.step
        self._log({"step": self.step, **v})
        if v["val_loss"] < self.best:
            self.best = v["val_loss"]
            self._save(self.out / "best.pt", full=False)


_STOP_REASONS = (None, "time limit", "SIGINT", "SIGTERM")


@contextlib.contextmanager
def _stop_on_signals():
    """While training: the first SIGINT or SIGTERM asks the loop to stop after its step, with a checkpoint (its
    name lands in the yielded list); the handlers are restored at once, so a second one interrupts at once."""
    asked: list[str] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield asked
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in sigs}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    def handler(signum: int, _frame) -> None:
        asked.append(signal.Signals(signum).name)
        restore()

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield asked
    finally:
        restore()


def train(cfg: TrainConfig) -> str:
    """Run (or resume) a training run; returns why it stopped (Trainer.run)."""
    return Trainer(cfg).run()
