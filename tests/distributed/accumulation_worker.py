"""Exact accumulation under a real torchrun: each of 2 ranks takes its half of one batch and
accumulates it in 2 micro-batches; rank 0 saves the step's loss and the reduced gradients.

Also the helpers the one-process tests share: the tiny model and a seeded batch of each kind."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny_pretrain.yaml")
SIGMOID = "{sigmoid_contrastive: {type: sigmoid_contrastive, same_text_positive: true}}"


def tiny_model(objectives: str | None = None) -> torch.nn.Module:
    """The tiny recipe's model (FLAVA's six objectives, or ``objectives``), dropout off, in training mode."""
    from flava_kit.recipe import build, load_recipe

    overrides = ["model.fusion.dropout=0.0"] + ([f"model.objectives={objectives}"] if objectives else [])
    torch.manual_seed(0)
    return build(load_recipe(TINY, overrides)).train()


def make_batch(model: torch.nn.Module, kind: str, size: int = 64, seed: int = 1) -> dict[str, torch.Tensor]:
    """A seeded ``paired``, ``image`` or ``text`` batch with masks of varying sizes and some ITM negatives."""
    generator = torch.Generator().manual_seed(seed)
    inputs = model.example_inputs(size, text_length=12, seed=seed)
    inputs["bool_masked_pos"] = torch.rand(inputs["bool_masked_pos"].shape, generator=generator) < torch.rand(size, 1, generator=generator)
    inputs["itm_labels"] = (torch.rand(size, generator=generator) > 0.2).long()
    keys = {"paired": inputs.keys(), "image": ["pixel_values", "bool_masked_pos", "codebook_pixel_values"],
            "text": ["input_ids", "input_ids_masked", "attention_mask", "mlm_labels"]}[kind]  # fmt: skip
    return {key: inputs[key] for key in keys}


def main(out: str, kind: str, objectives: str | None) -> None:
    import torch.distributed as dist

    from flava_kit.train.accumulation import ExactAccumulation, split_batch

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = tiny_model(objectives)
    batch = make_batch(model, kind)
    half = split_batch(batch, world)[rank]
    accumulate = ExactAccumulation(model, torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False),
                                   lambda loss: loss)  # fmt: skip
    totals = accumulate.backward(split_batch(half, 2))
    if rank == 0:
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        torch.save({"world": world, "loss": totals["loss"], "grads": grads}, Path(out) / "result.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
