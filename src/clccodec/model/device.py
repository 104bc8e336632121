"""Which torch device to run on, and the float settings coding needs there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import UsageError


def resolve_device(name: str | torch.device = "auto", index: int | None = None) -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N' -> a torch.device.

    `index` picks the GPU for a plain 'cuda' or 'auto' (a torchrun worker passes its local rank).
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name} requested but no CUDA GPU is available")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"unknown device '{name}' (use auto, cpu or cuda)")
    if name == "cuda" and index is not None:
        return torch.device("cuda", index)
    return torch.device(name)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off while coding (the float32 fast synthesis must not lose mantissa bits to it); restored after.

    The probability path and the exact synthesis are float64, where TF32 never applies; training turns TF32 on
    for itself (trainer.py).
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run natively on this CPU (AVX-512 BF16 or AMX); where they are emulated
    (AVX2 only), bf16 is slower than float32. False for GPUs (not measured there)."""
    if device.type != "cpu":
        return False
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
