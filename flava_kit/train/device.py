"""Where and in what precision a run computes (with :mod:`flava_kit.devices`, the only modules that name a device)."""

from __future__ import annotations

import contextlib
import resource
from typing import Any

import torch


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def process_group_backend(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device``'s type (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The loss scaler fp16 needs (a pass-through for fp32 and bf16)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (asynchronous copies from pinned memory on CUDA)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far: the CUDA allocator's on a GPU, the process's resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
