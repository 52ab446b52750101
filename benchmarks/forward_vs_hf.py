"""flava_kit's FLAVA vs HF transformers' FlavaModel: forward speed, MFU and peak memory, side by side.

Same full config, same weights (HF's, loaded through ``flava_kit.from_pretrained``), same batch;
fp32 on the CPU by default (``--device``, ``--precision``: autocast to bf16 / fp16 with fp32
weights); timed interleaved A/B after warm-up, in one process. Prints a table with samples/s,
achieved GFLOP/s, the ratio, and each model's peak memory during a forward, then each model's MFU
(achieved FLOP/s over the device's peak: a GPU's datasheet figure, or a matmul measured here).

    python benchmarks/forward_vs_hf.py [--batch 4] [--rounds 6] [--threads N] [--device cpu] [--precision fp32] [--tiny]

Peak memory: in a fresh process per model, what the forward itself needs. On the CPU the peak
resident set (Linux VmHWM, reset just before) above the resident set before one forward; on a
GPU the CUDA allocator's peak above what was allocated before it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile

import torch
from transformers import FlavaConfig, FlavaModel

import common
import flava_kit
from flava_kit.train.device import autocast

TINY_SIZES = {"batch": 2, "text_length": 16, "rounds": 2}


def tiny_config() -> FlavaConfig:
    """A FlavaConfig small enough for a forward in milliseconds (32 px images in 8 px patches)."""
    layer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    return FlavaConfig(image_config={**layer, "image_size": 32, "patch_size": 8}, multimodal_config=layer, projection_dim=16,
                       text_config={**layer, "vocab_size": 99, "max_position_embeddings": 40}, hidden_size=32)  # fmt: skip


def load(which: str, directory: str, device: torch.device):
    """The model to measure, loaded from the shared HF directory onto ``device``: ``hf`` or ``ours``."""
    model = FlavaModel.from_pretrained(directory) if which == "hf" else flava_kit.from_pretrained(directory)
    return model.to(device).eval()


def example(config: FlavaConfig, batch: int, text_length: int, device: torch.device) -> dict:
    """A seeded batch at the config's image size, all tokens real."""
    generator = torch.Generator().manual_seed(0)
    size = config.image_config.image_size
    inputs = {
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "input_ids": torch.randint(1, config.text_config.vocab_size, (batch, text_length), generator=generator),
        "attention_mask": torch.ones(batch, text_length, dtype=torch.long),  # padded to 77, all real
    }
    return {name: value.to(device) for name, value in inputs.items()}


def measure_peak(which: str, directory: str, args: argparse.Namespace) -> float:
    """In this (fresh) process: peak MiB above the memory in use before one forward."""
    device = torch.device(args.device)
    model = load(which, directory, device)
    inputs = example(FlavaConfig.from_pretrained(directory), args.batch, args.text_length, device)
    with torch.no_grad():  # page in memory-mapped weights (HF maps safetensors lazily): not the forward's cost
        sum(float(p.sum()) for p in model.parameters())
    gc.collect()
    common.synchronize(device)
    common.reset_peak_memory(device)
    before = common.memory_mib(device)
    with torch.inference_mode(), autocast(device, args.precision):
        model(**inputs)
    common.synchronize(device)
    return common.peak_memory_mib(device) - before


def peak_memory_mib(which: str, directory: str, args: argparse.Namespace, device: torch.device) -> float:
    """:func:`measure_peak` in a child process, so neither model inherits the other's heap."""
    command = [sys.executable, __file__, "--measure-peak", which, directory, "--batch", str(args.batch),
               "--text-length", str(args.text_length), "--device", device.type, "--precision", args.precision]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--text-length", type=int, default=77)
    parser.add_argument("--rounds", type=int, default=6, help="timed A/B rounds after warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--measure-peak", nargs=2, metavar=("WHICH", "DIR"), help=argparse.SUPPRESS)
    common.add_arguments(parser)
    args = parser.parse_args()
    common.apply_tiny(parser, args, TINY_SIZES)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_peak:
        print(measure_peak(*args.measure_peak, args))
        return
    device = common.resolve(args)
    torch.manual_seed(0)
    config = tiny_config() if args.tiny else FlavaConfig()
    with tempfile.TemporaryDirectory() as directory:
        FlavaModel(config).save_pretrained(directory)
        hf, ours = load("hf", directory, device), load("ours", directory, device)
        memory = {name: peak_memory_mib(name, directory, args, device) for name in ("hf", "ours")}
    run_benchmark(args, config, device, hf, ours, memory)


def like_for_like(a: torch.Tensor, b: torch.Tensor, precision: str) -> bool:
    """Whether two outputs agree as the same arithmetic would: within 1e-4 in fp32; in bf16 / fp16, where
    rounding differs with the order of operations, within 10% of the output's scale (different weights
    or inputs would be off by about 100%)."""
    gap = (a.float() - b.float()).abs().max()
    return bool(gap < 1e-4) if precision == "fp32" else bool(gap < 0.1 * b.float().abs().max())


def run_benchmark(args: argparse.Namespace, config: FlavaConfig, device: torch.device, hf, ours, memory: dict) -> None:
    inputs = example(config, args.batch, args.text_length, device)

    def run_hf():
        return hf(**inputs).multimodal_embeddings

    def run_ours():
        return ours(**inputs).multimodal_embeddings

    with torch.inference_mode(), autocast(device, args.precision):
        assert like_for_like(run_hf(), run_ours(), args.precision), "outputs differ: not a like-for-like comparison"
        flop_per_sample = common.count_flops(run_hf) / args.batch  # on HF's ops: the same arithmetic, all countable
        for _ in range(2):  # warm-up
            run_hf(), run_ours()
        times = {"hf": [], "ours": []}
        for round_ in range(args.rounds):
            order = [("hf", run_hf), ("ours", run_ours)]
            for name, run in order if round_ % 2 == 0 else order[::-1]:  # alternate who goes first
                times[name].append(common.timed(run, device))

    rate = {name: args.batch / statistics.median(values) for name, values in times.items()}
    gflop_per_sample = flop_per_sample / 1e9
    size = config.image_config.image_size
    print(f"FLAVA {'tiny' if args.tiny else 'full'} forward, {common.describe(device, args.precision)}, "
          f"batch {args.batch}, {size} px, {args.text_length} tokens, {args.rounds} interleaved rounds (median)")  # fmt: skip
    print(f"{'':<24}{'samples/s':>10}{'GFLOP/s':>10}{'peak MiB':>10}")
    labels = {"hf": "transformers FlavaModel", "ours": "flava_kit"}
    for name, label in labels.items():
        print(f"{label:<24}{rate[name]:>10.3f}{rate[name] * gflop_per_sample:>10.1f}{memory[name]:>10.0f}")
    print(f"{'ratio flava_kit / HF':<24}{rate['ours'] / rate['hf']:>10.3f}{'':>10}{common.ratio(memory['ours'], memory['hf']):>10.3f}")
    print(f"({common.gflop_text(flop_per_sample)} GFLOP per sample, counted by torch.utils.flop_counter)")
    if device.type == "cuda":
        print("(peak MiB: the CUDA allocator's peak during one forward above what was allocated before it)")
    peak = common.device_peak(device, args.precision, measure_size=512 if args.tiny else None)
    print(common.mfu_line({label: rate[name] * flop_per_sample for name, label in labels.items()}, peak))


if __name__ == "__main__":
    main()
