"""Gradient accumulation: one batch of 256 vs 4 x 64 accumulated exactly (``train.accumulation: 4``)
vs 4 x 64 accumulated naively (each micro-batch's own loss, gradients summed) — peak memory and
samples/s of the training step's forward and backward, the demo's model on the demo's data.

Each way runs in a fresh process on the same batch (the demo's data pipeline, one batch of 256);
its memory figure is the peak over the steps (a warm-up included) minus the memory in use before the
first one (model, gradients and batch), so it is what the step itself needs: activations, chiefly. The naive way is
here to show what exactness costs; its losses are not one batch's (fewer contrastive negatives).

    python benchmarks/accumulation.py [--batch 256] [--parts 4] [--steps 3] [--repeats 3] [--device cuda --precision bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import common

WAYS = ("one batch", "exact", "naive")


def demo_batch(recipe_name: str, size: int) -> tuple[torch.nn.Module, dict]:
    """The recipe's model and its data pipeline's first batch of ``size`` items."""
    from flava_kit.recipe import build, build_section, load_recipe

    recipe = load_recipe(recipe_name, [f"data.batch_size={size}"])
    torch.manual_seed(0)
    model = build(recipe).train()
    data = build_section(recipe, "data").follow(model)
    batch = next(iter(data.batches(data.tokenizer(None)).window(0, 1)))
    return model, {k: v for k, v in batch.items() if torch.is_tensor(v)}


def measure(way: str, args: argparse.Namespace) -> dict[str, float]:
    """Peak MiB above the pre-step memory, and samples/s of ``args.steps`` steps after one warm-up, trained ``way``."""
    from flava_kit.train.accumulation import ExactAccumulation, split_batch
    from flava_kit.train.device import autocast, to_device

    device = common.resolve(args)
    model, batch = demo_batch(args.recipe, args.batch)
    model.to(device)
    batch = to_device(batch, device)
    precision = lambda: autocast(device, args.precision)  # noqa: E731
    exact = ExactAccumulation(model, device, precision, lambda loss: loss)

    def step() -> None:
        model.zero_grad(set_to_none=False)  # gradients stay allocated: the same base for every way
        if way == "one batch":
            with precision():
                loss = model(**batch).loss
            loss.backward()
        elif way == "exact":
            exact.backward(split_batch(batch, args.parts))
        else:
            for micro in split_batch(batch, args.parts):
                with precision():
                    loss = model(**micro).loss / args.parts
                loss.backward()

    for param in model.parameters():  # the gradients in the base: the same for every way
        param.grad = torch.zeros_like(param)
    common.synchronize(device)
    base = common.memory_mib(device)
    common.reset_peak_memory(device)  # before the warm-up: on the CPU, memory freed after it stays resident
    step()
    seconds = sum(common.timed(step, device) for _ in range(args.steps))
    return {"peak_mib": common.peak_memory_mib(device) - base, "samples_per_s": args.batch * args.steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo", help="the model and data (a shipped recipe name or a path); default demo")
    parser.add_argument("--batch", type=int, default=256, help="the step's batch (default 256)")
    parser.add_argument("--parts", type=int, default=4, help="micro-batches it is accumulated in (default 4)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run, after one warm-up (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per way (default 3): the spread")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)
    common.add_arguments(parser)
    args = parser.parse_args()
    common.apply_tiny(parser, args, {"recipe": str(Path(__file__).parents[1] / "tests" / "fixtures" / "tiny_pretrain.yaml"), "batch": 16, "steps": 1, "repeats": 1})
    if args.way:
        print(json.dumps(measure(args.way, args)))
        return
    device = common.resolve(args)
    print(f"{args.recipe}: batch {args.batch} vs {args.parts} x {args.batch // args.parts}, {common.describe(device, args.precision)}, "
          f"{args.steps} steps x {args.repeats} processes (median, min-max)")  # fmt: skip
    print(f"{'':<12}{'peak MiB':>24}{'samples/s':>24}")
    results = {}
    for way in WAYS:
        command = [sys.executable, __file__, "--way", way, *sys.argv[1:]]
        runs = [json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]) for _ in range(args.repeats)]
        results[way] = {key: [run[key] for run in runs] for key in runs[0]}
        cells = "".join(f"{statistics.median(v):>10.1f} ({min(v):.1f}-{max(v):.1f})".rjust(24) for v in results[way].values())
        print(f"{way:<12}{cells}")
    for way in ("exact", "naive"):
        ratios = [statistics.median(results[way][key]) / statistics.median(results["one batch"][key]) for key in ("peak_mib", "samples_per_s")]
        print(f"ratio {way} / one batch: peak memory {ratios[0]:.3f}, samples/s {ratios[1]:.3f}")


if __name__ == "__main__":
    main()
