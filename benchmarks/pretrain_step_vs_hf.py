"""A full FLAVA pretraining step, flava_kit vs HF transformers' FlavaForPreTraining, side by side.

Same full config and weights (HF's, loaded through ``flava_kit.from_pretrained``), the same paired
batch (224 px images with 75 block-masked patches, 77 tokens with 15% MLM masking, 112 px codebook
pixels, matched pairs), fp32 on the CPU. A step is forward + backward + AdamW (fused, for both);
steps are timed interleaved after warm-up, in one process.

    python benchmarks/pretrain_step_vs_hf.py [--batch 2] [--memory-batch 4] [--rounds 3]

Three models: HF's, flava_kit with HF's semantics, and flava_kit with the contrastive loss on the
masked pass (``global_contrastive: {inputs: masked}``), which skips the second encoder pass.
It also prints the step's share of this machine's measured fp32 GEMM peak, and where a step's
time goes (torch.profiler, grouped: GEMM, attention, codebook convolutions, norms/activations,
optimizer, other).

Activation memory (at ``--memory-batch``): in a fresh process per model, with glibc returning
large blocks to the system so resident memory follows live memory,

- ``held MiB``: resident memory after a forward (graph alive) minus before it, in steady state:
  after one whole warm-up training step;
- ``saved MiB``: the bytes autograd saved for backward, counted through saved-tensor hooks
  (each storage once, parameters excluded): exact and deterministic.

Parameters and optimizer state are the same for both and are not counted.
"""

from __future__ import annotations

import argparse
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
from transformers import FlavaConfig, FlavaForPreTraining

import flava_kit
from flava_kit.masking import BlockMasking, MlmMasking


MODELS = ("hf", "ours", "ours_masked")
LABELS = {"hf": "transformers FlavaForPreTr.", "ours": "flava_kit", "ours_masked": "flava_kit, contrast masked"}


def load(which: str, directory: str):
    """HF's model, ours (HF's semantics), or ours with the contrastive loss on the masked pass."""
    if which == "hf":
        return FlavaForPreTraining.from_pretrained(directory).train()
    model = flava_kit.from_pretrained(directory)
    if which == "ours_masked":  # the option: no second, unmasked encoder pass
        masked = flava_kit.build(flava_kit.to_recipe(model), ["model.objectives.global_contrastive.inputs=masked"])
        masked.load_state_dict(model.state_dict())
        model = masked
    return model.train()


def batch(size: int, text_length: int = 77) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (size, text_length), generator=generator)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masked_ids, labels = MlmMasking()(ids, special, generator)
    return {
        "pixel_values": torch.randn(size, 3, 224, 224, generator=generator),
        "codebook_pixel_values": torch.rand(size, 3, 112, 112, generator=generator) * 0.8 + 0.1,
        "bool_masked_pos": BlockMasking(grid=14)(size, generator),
        "input_ids": ids,
        "input_ids_masked": masked_ids,
        "mlm_labels": labels,
        "attention_mask": torch.ones_like(ids),
        "itm_labels": torch.ones(size, dtype=torch.long),
    }


def step(model, optimizer, inputs: dict) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model(**{k: v.clone() for k, v in inputs.items()}).loss  # HF edits mim labels in place
    loss.backward()
    optimizer.step()
    return loss.item()


def _rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def measure_memory(which: str, directory: str, size: int) -> tuple[float, float]:
    """In this (fresh) process: (held MiB, saved MiB) of one training forward at batch ``size``."""
    model, inputs = load(which, directory), batch(size)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.no_grad():  # page in memory-mapped weights first: not the forward's cost
        sum(float(p.sum()) for p in model.parameters())
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    # Steady state: one whole training step first (HF's first forward holds ~0.5 GB more than later
    # ones), then the second forward is measured, its graph alive.
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    step(model, optimizer, inputs)
    optimizer.zero_grad(set_to_none=False)  # gradients stay allocated, as in training
    before = _rss_mib()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(**inputs)
    held = _rss_mib() - before
    assert out.loss.requires_grad  # the graph is alive while we measured
    return held, sum(saved.values()) / 2**20


GROUPS = [  # (group, op-name pattern), first match wins; self CPU time of each op
    ("GEMM", re.compile(r"addmm|\bmm\b|bmm|matmul|linear|_linear_pointwise|baddbmm")),
    ("attention", re.compile(r"scaled_dot_product|flash|_efficient_attention|softmax")),
    ("codebook (convolutions)", re.compile(r"conv|mkldnn_convolution|max_pool|upsample")),
    ("norms/activations", re.compile(r"layer_norm|gelu|relu|tanh|dropout")),
    ("optimizer", re.compile(r"adam|_foreach|Optimizer")),
]


def profile_step(model, optimizer, inputs: dict) -> dict[str, float]:
    """Seconds of one step by group (torch.profiler, self CPU time per op)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(model, optimizer, inputs)
    groups: dict[str, float] = {name: 0.0 for name, _ in GROUPS} | {"other": 0.0}
    for event in prof.key_averages():
        name = next((group for group, pattern in GROUPS if pattern.search(event.key)), "other")
        groups[name] += event.self_cpu_time_total / 1e6
    return groups


def gemm_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 GEMM rate, the best of a few ``size``-cubed matmuls."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def memory_in_child(which: str, directory: str, size: int) -> tuple[float, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    command = [sys.executable, __file__, "--measure-memory", which, directory, "--memory-batch", str(size)]
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    held, saved = result.stdout.split()[-2:]
    return float(held), float(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--memory-batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="timed A/B rounds after one warm-up step each")
    parser.add_argument("--measure-memory", nargs=2, metavar=("WHICH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        print(*measure_memory(*args.measure_memory, args.memory_batch))
        return
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        FlavaForPreTraining(FlavaConfig()).save_pretrained(directory)
        memory = {name: memory_in_child(name, directory, args.memory_batch) for name in MODELS}
        models = {name: load(name, directory) for name in MODELS}
    # Fused AdamW for both: on the CPU the default (a per-parameter loop) costs ~1 s of the step.
    optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5, fused=True)
                  for name, m in models.items()}  # fmt: skip
    inputs = batch(args.batch)
    losses = {name: step(models[name], optimizers[name], inputs) for name in MODELS}  # warm-up
    assert abs(losses["hf"] - losses["ours"]) < 1e-3 * abs(losses["hf"]), f"losses differ: {losses}"
    with FlopCounterMode(display=False) as counter:
        step(models["hf"], optimizers["hf"], inputs)
    gflop = counter.get_total_flops() / 1e9
    times: dict[str, list[float]] = {name: [] for name in MODELS}
    for round_ in range(args.rounds):
        for name in MODELS if round_ % 2 == 0 else MODELS[::-1]:
            start = time.perf_counter()
            step(models[name], optimizers[name], inputs)
            times[name].append(time.perf_counter() - start)
    rate = {name: args.batch / statistics.median(values) for name, values in times.items()}
    print(f"FLAVA pretraining step (forward + backward + AdamW), full config, fp32, CPU, {torch.get_num_threads()} threads "
          f"({os.cpu_count()} cores); batch {args.batch} paired, {args.rounds} interleaved rounds (median); "
          f"memory at batch {args.memory_batch}")  # fmt: skip
    print(f"{'':<28}{'samples/s':>10}{'GFLOP/s':>10}{'held MiB':>10}{'saved MiB':>11}")
    for name in MODELS:
        held, saved = memory[name]
        print(f"{LABELS[name]:<28}{rate[name]:>10.3f}{rate[name] / args.batch * gflop:>10.1f}{held:>10.0f}{saved:>11.0f}")
    for name in MODELS[1:]:
        print(f"{'ratio ' + LABELS[name] + ' / HF':<28}{rate[name] / rate['hf']:>10.3f}{'':>10}"
              f"{memory[name][0] / memory['hf'][0]:>10.3f}{memory[name][1] / memory['hf'][1]:>11.3f}")  # fmt: skip
    print("(the masked-contrast row is an option, not HF's semantics: it does less work than the FLOP count, which is HF's step, so its GFLOP/s is not an achieved rate)")
    print(f"({gflop:.0f} GFLOP per step at batch {args.batch}, counted by torch.utils.flop_counter on HF's step)")
    peak = gemm_peak_gflops()
    print(f"\nmeasured fp32 GEMM peak {peak:.0f} GFLOP/s; the step's share of it: "
          + ", ".join(f"{LABELS[n]} {rate[n] / args.batch * gflop / peak:.0%}" for n in MODELS[:2]))
    print("\nwhere one step's time goes (torch.profiler, self CPU seconds by op group)")
    profiles = {name: profile_step(models[name], optimizers[name], inputs) for name in MODELS}
    print(f"{'':<26}" + "".join(f"{LABELS[n][:26]:>28}" for n in MODELS))
    for group in profiles["hf"]:
        print(f"{group:<26}" + "".join(f"{profiles[n][group]:>28.2f}" for n in MODELS))
    print(f"{'total':<26}" + "".join(f"{sum(profiles[n].values()):>28.2f}" for n in MODELS))


if __name__ == "__main__":
    main()
