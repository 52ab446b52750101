"""flava_kit's FLAVA vs HF transformers' FlavaModel: forward speed and peak memory, side by side.

Same full config, same weights (HF's, loaded through ``flava_kit.from_pretrained``), same batch;
fp32 on the CPU; timed interleaved A/B after warm-up, in one process. Prints a table with
samples/s, achieved GFLOP/s, the ratio, and each model's peak memory during a forward.

    python benchmarks/forward_vs_hf.py [--batch 4] [--rounds 6] [--threads N]

Peak memory: in a fresh process per model, the peak resident set (Linux VmHWM, reset just
before) above the resident set before one forward -- what the forward itself needs.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import FlavaConfig, FlavaModel

import flava_kit


def _status(field: str) -> int:
    """A /proc/self/status memory field in MiB."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024


def load(which: str, directory: str):
    """The model to measure, loaded from the shared HF directory: ``hf`` or ``ours``."""
    model = FlavaModel.from_pretrained(directory) if which == "hf" else flava_kit.from_pretrained(directory)
    return model.eval()


def example(batch: int, text_length: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "pixel_values": torch.randn(batch, 3, 224, 224, generator=generator),
        "input_ids": torch.randint(1, 30522, (batch, text_length), generator=generator),
        "attention_mask": torch.ones(batch, text_length, dtype=torch.long),  # padded to 77, all real
    }


def measure_peak(which: str, directory: str, batch: int, text_length: int) -> int:
    """In this (fresh) process: peak resident MiB above the resident set during one forward."""
    model, inputs = load(which, directory), example(batch, text_length)
    with torch.no_grad():  # page in memory-mapped weights (HF maps safetensors lazily): not the forward's cost
        sum(float(p.sum()) for p in model.parameters())
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    before = _status("VmRSS")
    with torch.inference_mode():
        model(**inputs)
    return _status("VmHWM") - before


def peak_memory_mib(which: str, directory: str, batch: int, text_length: int) -> int:
    """:func:`measure_peak` in a child process, so neither model inherits the other's heap."""
    command = [sys.executable, __file__, "--measure-peak", which, directory, "--batch", str(batch), "--text-length", str(text_length)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--text-length", type=int, default=77)
    parser.add_argument("--rounds", type=int, default=6, help="timed A/B rounds after warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--measure-peak", nargs=2, metavar=("WHICH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_peak:
        print(measure_peak(*args.measure_peak, args.batch, args.text_length))
        return
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        FlavaModel(FlavaConfig()).save_pretrained(directory)
        hf, ours = load("hf", directory), load("ours", directory)
        memory = {name: peak_memory_mib(name, directory, args.batch, args.text_length) for name in ("hf", "ours")}
        run_benchmark(args, hf, ours, memory)


def run_benchmark(args: argparse.Namespace, hf, ours, memory: dict) -> None:
    inputs = example(args.batch, args.text_length)

    def run_hf():
        return hf(**inputs).multimodal_embeddings

    def run_ours():
        return ours(**inputs).multimodal_embeddings

    with torch.inference_mode():
        assert (run_hf() - run_ours()).abs().max() < 1e-4, "outputs differ: not a like-for-like comparison"
        with FlopCounterMode(display=False) as counter:  # on HF's ops: the same arithmetic, all countable
            run_hf()
        gflop_per_sample = counter.get_total_flops() / 1e9 / args.batch
        for _ in range(2):  # warm-up
            run_hf(), run_ours()
        times = {"hf": [], "ours": []}
        for round_ in range(args.rounds):
            order = [("hf", run_hf), ("ours", run_ours)]
            for name, run in order if round_ % 2 == 0 else order[::-1]:  # alternate who goes first
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)

    rate = {name: args.batch / statistics.median(values) for name, values in times.items()}
    print(f"FLAVA full forward, fp32, CPU, {torch.get_num_threads()} threads ({os.cpu_count()} cores), "
          f"batch {args.batch}, 224 px, {args.text_length} tokens, {args.rounds} interleaved rounds (median)")  # fmt: skip
    print(f"{'':<24}{'samples/s':>10}{'GFLOP/s':>10}{'peak MiB':>10}")
    for name, label in (("hf", "transformers FlavaModel"), ("ours", "flava_kit")):
        print(f"{label:<24}{rate[name]:>10.3f}{rate[name] * gflop_per_sample:>10.1f}{memory[name]:>10d}")
    print(f"{'ratio flava_kit / HF':<24}{rate['ours'] / rate['hf']:>10.3f}{'':>10}{memory['ours'] / memory['hf']:>10.3f}")
    print(f"({gflop_per_sample:.1f} GFLOP per sample, counted by torch.utils.flop_counter)")


if __name__ == "__main__":
    main()
