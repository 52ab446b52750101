"""A full FLAVA pretraining step, flava_kit vs HF transformers' FlavaForPreTraining, side by side.

Same full config and weights (HF's, loaded through ``flava_kit.from_pretrained``), the same paired
batch (224 px images with 75 block-masked patches, 77 tokens with 15% MLM masking, 112 px codebook
pixels, matched pairs), fp32 on the CPU by default (``--device``; ``--precision`` autocasts to
bf16 / fp16 with fp32 weights, fp16 with a loss scaler). A step is forward + backward + AdamW
(fused, for both); steps are timed interleaved after warm-up, in one process.

    python benchmarks/pretrain_step_vs_hf.py [--batch 2] [--memory-batch 4] [--rounds 3] [--device cpu] [--precision fp32] [--tiny]

Three models: HF's, flava_kit with HF's semantics, and flava_kit with the contrastive loss on the
masked pass (``global_contrastive: {inputs: masked}``), which skips the second encoder pass.
It also prints each step's MFU (achieved FLOP/s over the device's peak: a GPU's datasheet figure,
or on the CPU this machine's measured GEMM rate), and where a step's time goes (torch.profiler,
grouped: GEMM, attention, codebook convolutions, norms/activations, optimizer, other; self CPU
time per op on the CPU, the GPU time of each op's kernels on a GPU).

Activation memory (at ``--memory-batch``): in a fresh process per model, in steady state (after
one whole warm-up training step),

- ``held MiB``: memory in use after a forward (graph alive) minus before it: on the CPU resident
  memory, with glibc returning large blocks to the system so it follows live memory; on a GPU the
  CUDA allocator's allocated bytes;
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

import torch
from transformers import FlavaConfig, FlavaForPreTraining

import common
import flava_kit
from flava_kit.masking import BlockMasking, MlmMasking
from flava_kit.train.device import autocast, grad_scaler

MODELS = ("hf", "ours", "ours_masked")
LABELS = {"hf": "transformers FlavaForPreTr.", "ours": "flava_kit", "ours_masked": "flava_kit, contrast masked"}
TINY_SIZES = {"batch": 2, "memory_batch": 2, "rounds": 1}


def tiny_config() -> FlavaConfig:
    """A small FlavaForPreTraining config: 112 px images in 8 px patches (the codebook's 14x14 grid), BERT's vocabulary."""
    layer = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    # HF's MMM heads are as wide as the unimodal encoders and its ITM head as config.hidden_size, yet
    # both read the fused states: every width must agree for HF to run at all.
    return FlavaConfig(image_config={**layer, "image_size": 112, "patch_size": 8, "vocab_size": 64}, text_config=layer,
                       multimodal_config=layer, image_codebook_config={"hidden_size": 8, "num_blocks_per_group": 1, "vocab_size": 64},
                       projection_dim=16, hidden_size=32)  # fmt: skip


def load(which: str, directory: str, device: torch.device):
    """HF's model, ours (HF's semantics), or ours with the contrastive loss on the masked pass, on ``device``."""
    if which == "hf":
        return FlavaForPreTraining.from_pretrained(directory).to(device).train()
    model = flava_kit.from_pretrained(directory)
    if which == "ours_masked":  # the option: no second, unmasked encoder pass
        masked = flava_kit.build(flava_kit.to_recipe(model), ["model.objectives.global_contrastive.inputs=masked"])
        masked.load_state_dict(model.state_dict())
        model = masked
    return model.to(device).train()


def batch(size: int, image_size: int = 224, text_length: int = 77, device: torch.device | None = None) -> dict:
    """A seeded paired batch: block-masked patches, MLM-masked BERT ids, codebook pixels, matched pairs."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (size, text_length), generator=generator)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masked_ids, labels = MlmMasking()(ids, special, generator)
    inputs = {
        "pixel_values": torch.randn(size, 3, image_size, image_size, generator=generator),
        "codebook_pixel_values": torch.rand(size, 3, 112, 112, generator=generator) * 0.8 + 0.1,
        "bool_masked_pos": BlockMasking(grid=14)(size, generator),
        "input_ids": ids,
        "input_ids_masked": masked_ids,
        "mlm_labels": labels,
        "attention_mask": torch.ones_like(ids),
        "itm_labels": torch.ones(size, dtype=torch.long),
    }
    return {name: value.to(device) for name, value in inputs.items()} if device is not None else inputs


class Trainer:
    """One model's training step: fused AdamW, autocast to ``precision``, a loss scaler for fp16."""

    def __init__(self, model, device: torch.device, precision: str):
        self.model, self.device, self.precision = model, device, precision
        # Fused AdamW for all: on the CPU the default (a per-parameter loop) costs ~1 s of the step.
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
        self.scaler = grad_scaler(device, precision)  # a pass-through but for fp16

    def forward(self, inputs: dict):
        """The training forward (on clones: HF edits mim labels in place)."""
        with autocast(self.device, self.precision):
            return self.model(**{k: v.clone() for k, v in inputs.items()})

    def step(self, inputs: dict) -> float:
        """Forward, backward and an optimizer step; the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward(inputs).loss
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


def measure_memory(which: str, directory: str, args: argparse.Namespace) -> tuple[float, float]:
    """In this (fresh) process: (held MiB, saved MiB) of one training forward at ``--memory-batch``."""
    device = torch.device(args.device)
    model = load(which, directory, device)
    inputs = batch(args.memory_batch, FlavaConfig.from_pretrained(directory).image_config.image_size, device=device)
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
    trainer = Trainer(model, device, args.precision)
    trainer.step(inputs)
    trainer.optimizer.zero_grad(set_to_none=False)  # gradients stay allocated, as in training
    common.synchronize(device)
    before = common.memory_mib(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = trainer.forward(inputs)
    common.synchronize(device)
    held = common.memory_mib(device) - before
    assert out.loss.requires_grad  # the graph is alive while we measured
    return held, sum(saved.values()) / 2**20


GROUPS = [  # (group, op-name pattern), first match wins; self time of each op
    ("GEMM", re.compile(r"addmm|\bmm\b|bmm|matmul|linear|_linear_pointwise|baddbmm")),
    ("attention", re.compile(r"scaled_dot_product|flash|_efficient_attention|softmax")),
    ("codebook (convolutions)", re.compile(r"conv|mkldnn_convolution|max_pool|upsample")),
    ("norms/activations", re.compile(r"layer_norm|gelu|relu|tanh|dropout")),
    ("optimizer", re.compile(r"adam|_foreach|Optimizer")),
]


def profile_step(trainer: Trainer, inputs: dict) -> dict[str, float]:
    """Seconds of one step by group (torch.profiler): each op's self CPU time, or on a GPU the time of
    the kernels each op launched itself (ops only: kernel events would count that time twice)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = trainer.device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]) as prof:
        trainer.step(inputs)
        common.synchronize(trainer.device)
    groups: dict[str, float] = {name: 0.0 for name, _ in GROUPS} | {"other": 0.0}
    for event in prof.key_averages():
        if event.device_type != DeviceType.CPU:
            continue
        name = next((group for group, pattern in GROUPS if pattern.search(event.key)), "other")
        groups[name] += (event.self_device_time_total if on_gpu else event.self_cpu_time_total) / 1e6
    return groups


def memory_in_child(which: str, directory: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    command = [sys.executable, __file__, "--measure-memory", which, directory, "--memory-batch", str(args.memory_batch),
               "--device", device.type, "--precision", args.precision]  # fmt: skip
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    held, saved = result.stdout.split()[-2:]
    return float(held), float(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--memory-batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="timed A/B rounds after one warm-up step each")
    parser.add_argument("--measure-memory", nargs=2, metavar=("WHICH", "DIR"), help=argparse.SUPPRESS)
    common.add_arguments(parser)
    args = parser.parse_args()
    common.apply_tiny(parser, args, TINY_SIZES)
    if args.measure_memory:
        print(*measure_memory(*args.measure_memory, args))
        return
    device = common.resolve(args)
    torch.manual_seed(0)
    config = tiny_config() if args.tiny else FlavaConfig()
    with tempfile.TemporaryDirectory() as directory:
        FlavaForPreTraining(config).save_pretrained(directory)
        memory = {name: memory_in_child(name, directory, args, device) for name in MODELS}
        trainers = {name: Trainer(load(name, directory, device), device, args.precision) for name in MODELS}
    inputs = batch(args.batch, config.image_config.image_size, device=device)
    losses = {name: trainers[name].step(inputs) for name in MODELS}  # warm-up
    tolerance = 1e-3 if args.precision == "fp32" else 5e-2  # bf16 / fp16 round differently with the order of operations
    assert abs(losses["hf"] - losses["ours"]) < tolerance * abs(losses["hf"]), f"losses differ: {losses}"
    flop = common.count_flops(lambda: trainers["hf"].step(inputs))
    gflop = flop / 1e9
    times: dict[str, list[float]] = {name: [] for name in MODELS}
    for round_ in range(args.rounds):
        for name in MODELS if round_ % 2 == 0 else MODELS[::-1]:
            times[name].append(common.timed(lambda: trainers[name].step(inputs), device))
    rate = {name: args.batch / statistics.median(values) for name, values in times.items()}
    print(f"FLAVA pretraining step (forward + backward + AdamW), {'tiny' if args.tiny else 'full'} config, "
          f"{common.describe(device, args.precision)}; batch {args.batch} paired, {args.rounds} interleaved rounds (median); "
          f"memory at batch {args.memory_batch}")  # fmt: skip
    print(f"{'':<28}{'samples/s':>10}{'GFLOP/s':>10}{'held MiB':>10}{'saved MiB':>11}")
    for name in MODELS:
        held, saved = memory[name]
        print(f"{LABELS[name]:<28}{rate[name]:>10.3f}{rate[name] / args.batch * gflop:>10.1f}{held:>10.0f}{saved:>11.0f}")
    for name in MODELS[1:]:
        print(f"{'ratio ' + LABELS[name] + ' / HF':<28}{rate[name] / rate['hf']:>10.3f}{'':>10}"
              f"{common.ratio(memory[name][0], memory['hf'][0]):>10.3f}{common.ratio(memory[name][1], memory['hf'][1]):>11.3f}")  # fmt: skip
    print("(the masked-contrast row is an option, not HF's semantics: it does less work than the FLOP count, which is HF's step, so its GFLOP/s is not an achieved rate)")
    print(f"({common.gflop_text(flop) if args.tiny else f'{gflop:.0f}'} GFLOP per step at batch {args.batch}, "
          f"counted by torch.utils.flop_counter on HF's step)")  # fmt: skip
    if device.type == "cuda":
        print("(held MiB: the CUDA allocator's allocated bytes after the forward minus before it)")
    peak = common.device_peak(device, args.precision, measure_size=512 if args.tiny else None)
    print("\n" + common.mfu_line({LABELS[n]: rate[n] / args.batch * flop for n in MODELS[:2]}, peak))
    where = "GPU seconds of each op's own kernels" if device.type == "cuda" else "self CPU seconds"
    print(f"\nwhere one step's time goes (torch.profiler, {where} by op group)")
    profiles = {name: profile_step(trainers[name], inputs) for name in MODELS}
    print(f"{'':<26}" + "".join(f"{LABELS[n][:26]:>28}" for n in MODELS))
    for group in profiles["hf"]:
        print(f"{group:<26}" + "".join(f"{profiles[n][group]:>28.2f}" for n in MODELS))
    print(f"{'total':<26}" + "".join(f"{sum(profiles[n].values()):>28.2f}" for n in MODELS))


if __name__ == "__main__":
    main()
