"""What the side-by-side benchmarks share: ``--device``, ``--precision`` and ``--tiny``, synchronised
timing, memory (the CUDA allocator's on a GPU, the resident set on the CPU), FLOP counts and MFU.

MFU (model FLOPs utilisation) is the FLOP/s a benchmark achieves, with its FLOPs counted by
``torch.utils.flop_counter`` (matmuls, convolutions, attention), over the device's peak in the
precision the matmuls run in: a datasheet figure for a GPU in :data:`GPU_PEAKS`, otherwise (the
CPU, an unlisted GPU) the best rate of a large matmul measured here. :class:`Peak` says which.

Every benchmark imports this module as ``common`` (scripts run from ``benchmarks/``, whose folder
Python puts first on the path).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from flava_kit.devices import resolve_device
from flava_kit.errors import FlavaKitError
from flava_kit.train.device import DTYPES, peak_memory_mib as allocator_or_process_peak_mib

PRECISIONS = ("fp32", "bf16", "fp16")

# Dense (no structured sparsity) peak TFLOP/s of NVIDIA GPUs, by a pattern of the name CUDA reports; the
# first match wins, so a specific variant comes before its family. "tf32" is the fp32 matmul rate on
# tensor cores, used when torch.get_float32_matmul_precision() allows TF32; "fp32" the CUDA-core rate.
# Datasheets quote tensor-core rates "with sparsity": the dense rate is half of that.
GPU_PEAKS: list[tuple[str, dict[str, float], str]] = [
    # NVIDIA H100 Tensor Core GPU datasheet: PCIe 51 FP32, 756 TF32*, 1,513 BF16/FP16* (* sparse)
    (r"H100.*PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5}, "NVIDIA H100 datasheet (PCIe)"),
    # the same datasheet, H100 NVL: 60 FP32, 835 TF32*, 1,671 BF16/FP16*
    (r"H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}, "NVIDIA H100 datasheet (NVL)"),
    # NVIDIA H200 Tensor Core GPU datasheet: H200 NVL 60 FP32, 835 TF32*, 1,671 BF16/FP16*
    (r"H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}, "NVIDIA H200 datasheet (NVL)"),
    # NVIDIA GH200 Grace Hopper datasheet: the GPU's 67 FP32, 989 TF32*, 1,979 BF16/FP16* (H100 SXM's)
    (r"GH200", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}, "NVIDIA GH200 datasheet"),
    # NVIDIA H100 datasheet, SXM5 (CUDA names it e.g. "NVIDIA H100 80GB HBM3"): 67 FP32, 989 TF32*, 1,979 BF16/FP16*
    (r"H100", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}, "NVIDIA H100 datasheet (SXM)"),
    # NVIDIA H200 datasheet, SXM: 67 FP32, 989 TF32*, 1,979 BF16/FP16*
    (r"H200", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5}, "NVIDIA H200 datasheet (SXM)"),
    # NVIDIA A100 Tensor Core GPU datasheet (SXM and PCIe alike): 19.5 FP32, 156 TF32, 312 BF16/FP16 dense
    (r"A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}, "NVIDIA A100 datasheet"),
    # NVIDIA L40S datasheet: 91.6 FP32, 183 TF32, 362.05 BF16/FP16 dense
    (r"L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05}, "NVIDIA L40S datasheet"),
    # NVIDIA L4 datasheet: 30.3 FP32, 120 TF32*, 242 BF16/FP16*
    (r"\bL4\b", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}, "NVIDIA L4 datasheet"),
    # NVIDIA A10 datasheet: 31.2 FP32, 62.5 TF32, 125 BF16/FP16 dense (not the A10G, whose clocks differ)
    (r"\bA10\b", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}, "NVIDIA A10 datasheet"),
    # NVIDIA V100 datasheet: SXM2 15.7 FP32, 125 FP16 tensor; PCIe 14 and 112; no BF16 or TF32 units
    (r"V100-SXM", {"fp32": 15.7, "fp16": 125.0}, "NVIDIA V100 datasheet (SXM2)"),
    (r"V100", {"fp32": 14.0, "fp16": 112.0}, "NVIDIA V100 datasheet (PCIe)"),
    # NVIDIA T4 datasheet: 8.1 FP32, 65 FP16 (mixed precision); no BF16
    (r"\bT4\b", {"fp32": 8.1, "fp16": 65.0}, "NVIDIA T4 datasheet"),
]


def add_arguments(parser: argparse.ArgumentParser, precision_help: str | None = None) -> None:
    """``--device`` (auto, cpu, cuda; default cpu), ``--precision`` (autocast dtype) and ``--tiny``."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                        help="where to run: cpu (default), cuda, or auto (CUDA when available)")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help=precision_help or "fp32 (default), or autocast to bf16 / fp16 with fp32 weights")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="a tiny size that runs in seconds: a smoke test, not a measurement")


def apply_tiny(parser: argparse.ArgumentParser, args: argparse.Namespace, sizes: dict[str, Any]) -> None:
    """With ``--tiny``, ``sizes`` replace the options still at their defaults (an option given explicitly wins)."""
    if args.tiny:
        for name, value in sizes.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)


def resolve(args: argparse.Namespace) -> torch.device:
    """The device ``--device`` names, checked against ``--precision``; exits with a message (no traceback)
    where there is no such device or it cannot compute in that precision."""
    try:
        device = resolve_device(args.device, where="--device")
    except FlavaKitError as error:
        raise SystemExit(f"error: {error}") from None
    if device.type == "cuda" and args.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise SystemExit(f"error: --precision bf16, but {torch.cuda.get_device_name(device)} has no bf16 support: use fp16 or fp32")
    return device


def describe(device: torch.device, precision: str) -> str:
    """The precision and device, as a table's title says them: ``fp32, CPU, 2 threads (2 cores)``."""
    how = precision if precision == "fp32" else f"{precision} autocast"
    if device.type == "cuda":
        return f"{how}, {torch.cuda.get_device_name(device)}"
    return f"{how}, CPU, {torch.get_num_threads()} threads ({os.cpu_count()} cores)"


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (kernels run asynchronously); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``function()`` takes, its GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def _status_mib(field: str) -> float:
    """A /proc/self/status memory field (VmRSS, VmHWM) in MiB."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def memory_mib(device: torch.device) -> float:
    """Memory in use now: the CUDA allocator's allocated bytes on a GPU, the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _status_mib("VmRSS")


def reset_peak_memory(device: torch.device) -> None:
    """Restart :func:`peak_memory_mib` from the memory in use now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current VmRSS


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory since :func:`reset_peak_memory`: the CUDA allocator's on a GPU (flava_kit's training
    figure), the resident set's high-water mark (VmHWM, which unlike ``ru_maxrss`` can be reset) on the CPU."""
    if device.type == "cuda":
        return allocator_or_process_peak_mib(device)
    return _status_mib("VmHWM")


def _linear_flops(x_shape, weight_shape) -> int:
    """A linear layer's FLOPs: 2 x (rows of ``x``) x in_features x out_features."""
    rows = 1
    for size in x_shape[:-1]:
        rows *= size
    return 2 * rows * x_shape[-1] * weight_shape[0]


def _onednn_linear_flops(x_shape, second, third=None, *_, out_shape=None, **__) -> int:
    """oneDNN's fused linear, given shapes: ``(x, weight, bias, ...)``, or ``(x, other, weight, bias, ...)`` for
    its ``binary`` overload (a residual add), told apart by the third argument: a bias is 1-D, a weight 2-D."""
    weight = third if third is not None and len(third) == 2 else second
    return _linear_flops(x_shape, weight)


def _onednn_linear_formulas() -> dict:
    """FLOP formulas for oneDNN's fused linear (flava_kit's fp32 CPU inference path), which the counter does not know."""
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
    return {} if op is None else {op: _onednn_linear_flops}  # the counter looks ops up by packet, not overload


def count_flops(function: Callable[[], Any]) -> int:
    """FLOPs of one call of ``function`` (forward and, if it runs one, backward), by ``torch.utils.flop_counter``
    (matmuls, convolutions, attention), taught oneDNN's fused linear so flava_kit's CPU inference counts in full."""
    with FlopCounterMode(display=False, custom_mapping=_onednn_linear_formulas()) as counter:
        function()
    return counter.get_total_flops()


@dataclass
class Peak:
    """A device's peak FLOP/s in one precision, and where the figure comes from."""

    flops: float
    source: str

    def __str__(self) -> str:
        return f"{_rate(self.flops)} ({self.source})"

    def mfu(self, achieved: float) -> float:
        """``achieved`` FLOP/s as a share of this peak."""
        return achieved / self.flops


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN where ``b`` is 0 (a tiny run's memory can round to nothing)."""
    return a / b if b else math.nan


def gflop_text(flops: float) -> str:
    """FLOPs in GFLOP, one decimal (two significant digits below 1 GFLOP, as a tiny model needs)."""
    gflop = flops / 1e9
    return f"{gflop:.1f}" if gflop >= 1 else f"{gflop:#.2g}"


def _rate(flops: float) -> str:
    """FLOP/s in TFLOP/s from 1e12, else in GFLOP/s."""
    return f"{flops / 1e12:.1f} TFLOP/s" if flops >= 1e12 else f"{flops / 1e9:.0f} GFLOP/s"


def matmul_kind(device: torch.device, precision: str) -> str:
    """What the matmuls run in: the autocast dtype, or for fp32 on a GPU ``tf32`` where PyTorch allows it."""
    if precision == "fp32" and device.type == "cuda" and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return precision


def listed_peak(name: str, kind: str) -> Peak | None:
    """The datasheet peak of the GPU CUDA calls ``name`` for matmuls in ``kind``; None where :data:`GPU_PEAKS` has none."""
    for pattern, peaks, source in GPU_PEAKS:
        if re.search(pattern, name):
            return Peak(peaks[kind] * 1e12, f"{name}, dense {kind} peak from the {source}") if kind in peaks else None
    return None


def device_peak(device: torch.device, precision: str, measure_size: int | None = None) -> Peak:
    """A listed GPU's datasheet peak for ``precision``; otherwise (the CPU, an unlisted GPU) :func:`measured_peak`."""
    if device.type == "cuda":
        listed = listed_peak(torch.cuda.get_device_name(device), matmul_kind(device, precision))
        if listed is not None:
            return listed
    return measured_peak(device, precision, measure_size)


def measured_peak(device: torch.device, precision: str, size: int | None = None, repeats: int = 5) -> Peak:
    """The best rate of ``repeats`` square matmuls of ``size`` (2048 on the CPU, 8192 on a GPU) in ``precision``'s dtype."""
    size = size or (8192 if device.type == "cuda" else 2048)
    dtype = DTYPES.get(precision, torch.float32)
    a, b = torch.randn(size, size, device=device).to(dtype), torch.randn(size, size, device=device).to(dtype)
    timed(lambda: a @ b, device)  # warm-up
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "this CPU"
    return Peak(2 * size**3 / best, f"measured on {where}: best of {repeats} {size}x{size} {precision} matmuls")


def mfu_line(achieved: dict[str, float], peak: Peak) -> str:
    """``MFU against <peak>: label 12.3%, ...`` for achieved FLOP/s by label."""
    return f"MFU against {peak}: " + ", ".join(f"{label} {_percent(peak.mfu(rate))}" for label, rate in achieved.items())


def _percent(share: float) -> str:
    """One decimal; two significant digits below 1% (a tiny model's MFU)."""
    return f"{share:.1%}" if share >= 0.01 else f"{share * 100:#.2g}%"
