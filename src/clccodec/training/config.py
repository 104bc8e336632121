"""Training settings: the defaults of both `clc train` and the library's TrainConfig (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    data: str = "../shared/data/train"
    out: str = "runs/full"
    config: str = "full"
    init: str | None = None  # weights file to start from (the normal way to continue training)
    steps: int = 60_000  # total step count to reach (resuming continues towards it)
    batch: int = 8
    crop: int = 256  # 128: the latent is 8x8, all border, and the entropy model learns the wrong statistics (MODEL_CARD)
    # 0: every photo gives `crop` crops (photos smaller are left out). Else photos down to this short side train
    # too, a batch cut at the largest multiple of 64 its photos hold, up to `crop` (large crops, all photos kept)
    crop_min: int = 0
    lr: float = 2e-4
    lr_decay_at: float = 0.9  # "step" schedule: fraction of `steps` after which the learning rate drops 10x
    schedule: str = "step"  # "step" (constant, then 10x lower) or "cosine" (warm-up, then cosine decay to lr/100)
    warmup: int = 0  # linear warm-up steps (both schedules)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); validated and exported
    quality: float | None = None  # train at this one quality (a single lambda); None: q = 1 + 7 u^q_power per crop
    # q_power > 1 draws the low qualities more often (u ~ U[0, 1]): they are where the model is furthest from VTM
    q_power: float = 1.0
    # weigh each crop's loss by (lambda(q) / lambda_mid)^-q_balance (trainer.quality_weight); 0: plain sum
    q_balance: float = 0.0
    # y's rate from the rounded latent (the bits the coder spends; straight-through) instead of additive noise
    hard_rate: bool = False
    refs_max: int = 5
    p_no_refs: float = 0.15
    # probability that a step's references start with the bank crops of each crop's own photo (content it shares:
    # the model learns to use a good reference, as in a collection); otherwise only entries of other photos
    p_related: float = 0.0
    # probability that a step's first reference is a ref_crop window of each crop's own photo that contains the
    # crop (shifted off the latent grid, colour-jittered): a reference worth exploiting, as a near-duplicate is
    p_overlap: float = 0.0
    # switch the CLM's null prior on (model config null_prior; the weights carry over: it adds no parameter)
    null_prior: bool = False
    # run the CLM after this many decoded slices, its query seeing them (model config query_slices; warm-starts
    # from weights without it); None: the model's own
    query_slices: int | None = None
    # switch on the model's per-quality scales in g_a and g_s (model config rate_scales; warm-starts at 1)
    rate_scales: bool = False
    # weight of the CLM's contrastive matching loss (CLCModel.match_loss; trains the query and key only)
    match_weight: float = 0.0
    # train only the parameters under these top-level modules of CLCModel (e.g. "clm,value_proj,fusion,entropy":
    # a quick pass on the reference path with the transforms frozen); "" trains everything
    train_only: str = ""
    ref_crop: int = 256
    ref_per_image: int = 2
    refresh_every: int = 1000
    val_every: int = 2000
    val_crop: int = 256
    ckpt_every: int = 250
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    compile: bool = False  # torch.compile g_a and g_s for training (trainer.py)
    amp: bool | None = None  # bf16 autocast for the transforms; None: only where bf16 is native (trainer.fast_bf16)
    val_fraction: float = 0.05
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0 = no limit
    # photos whose file name matches this glob are low-quality JPEGs (Sun-Hays, q ~ 75): downscaled on load to hide
    # their block artifacts; "" turns it off
    downscale_glob: str = "sunhays80*"
