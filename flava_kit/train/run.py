"""``pretrain``: a recipe with ``model``, ``data`` and ``train`` sections in, a trained run directory out."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist

from flava_kit.errors import Problem, RecipeError
from flava_kit.train.device import process_group_backend, resolve_device
from flava_kit.recipe import build, build_section, load_recipe


@dataclass
class PretrainRun:
    """What :func:`pretrain` leaves: the trained model, where its files are, the last step, and
    ``metrics`` (``zero_shot_accuracy``, ``chance`` and ``held_out_images`` on synthetic data) and
    ``wall_s``, the seconds from the call to the end of the held-out evaluation.

    Under FSDP, rank 0's ``model`` is whole; other ranks keep their shard.
    """

    model: torch.nn.Module
    run_dir: Path
    step: int
    skipped_items: int
    metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def pretrain(source: Any, overrides: Iterable[str] = (), run_dir: str | Path = "runs/pretrain", resume: bool = False,
             stop_after: int | None = None) -> PretrainRun:  # fmt: skip
    """Train as the recipe says; under ``torchrun`` each process trains one DDP rank (gloo on CPU).

    Writes ``run_dir``: checkpoints, ``losses.csv``, ``losses.png``, ``tokenizer/`` and, when the
    data is the synthetic dataset, ``results.json`` with the held-out zero-shot accuracy.
    """
    from flava_kit.data.synthetic import class_names
    from flava_kit.train.trainer import Trainer

    started = time.perf_counter()
    recipe = load_recipe(source, overrides)
    if "data" not in recipe.data:
        raise RecipeError(Problem("data", "pretraining needs a 'data' section", expected="data: {sources: {...}, image_masking: ..., text_masking: ...}"))
    data, train = build_section(recipe, "data"), build_section(recipe, "train")
    device = resolve_device(train.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(process_group_backend(device))
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(data.seed)  # the same initial weights on every rank and in every run
    model = build(recipe)
    data.follow(model)
    run_dir = Path(run_dir)
    tokenizer = data.tokenizer(run_dir / "tokenizer" if rank == 0 else None)  # one writer under torchrun
    text_vocab = model.flava.text_encoder.vocab_size
    if len(tokenizer) > text_vocab:
        raise RecipeError(Problem("model.text_encoder.vocab_size", f"{text_vocab} is smaller than the tokenizer's {len(tokenizer)} tokens",
                                  suggestion=f"set model.text_encoder.vocab_size={len(tokenizer)} or more"))  # fmt: skip
    if train.init_from and not resume:
        from flava_kit.train.checkpoint import load_matching_weights

        untouched, unused = load_matching_weights(train.init_from, model)
        if rank == 0:
            print(f"init_from {train.init_from}: {len(untouched)} model tensors kept their initial values "
                  f"({', '.join(untouched[:4])}{' ...' if len(untouched) > 4 else ''}); {len(unused)} checkpoint tensors unused")  # fmt: skip
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    trainer = Trainer(model, train, data.batches(tokenizer, rank, world_size), run_dir, recipe.data, workers=data.workers, device=device)
    step = trainer.fit(resume=resume, stop_after=stop_after)
    if train.fsdp:  # gather the shards (every rank takes part); rank 0 gets, evaluates and returns a whole model
        weights = trainer.full_state_dict()
        if rank == 0:
            model = build(recipe)
            model.load_state_dict(weights)
    run = PretrainRun(model, run_dir, step, trainer.skipped_items())
    held_out = data.held_out()
    if held_out is not None and step == train.steps and rank == 0:
        items = [held_out[i] for i in range(len(held_out))]
        names = class_names()
        if data.task == "classify":
            accuracy = classification_accuracy(model, data, tokenizer, items)
            run.metrics = {"accuracy": accuracy, "chance": 1 / len(names), "held_out_images": len(items)}
        else:
            run.metrics = held_out_report(model, data, tokenizer, items, names)
            run.metrics["shifted_zero_shot_accuracy"] = shifted_accuracy(model, data, tokenizer, len(items), held_out.image_size)
        run.wall_s = time.perf_counter() - started
        summary = {"step": step, "skipped_items": run.skipped_items, **run.metrics, "wall_s": round(run.wall_s, 1)}
        (run_dir / "results.json").write_text(json.dumps(summary, indent=2))
    run.wall_s = run.wall_s or time.perf_counter() - started
    if dist.is_initialized():  # the other ranks wait for rank 0's evaluation: all leave together
        dist.barrier()
    return run


def held_out_report(model: Any, data: Any, tokenizer: Any, items: list[dict], names: list[str]) -> dict[str, float]:
    """What the field reports, on the held-out synthetic set: zero-shot acc@1 / acc@5 / mean per-class
    recall, image<->text retrieval R@1 against the items' own captions, and a linear probe (L-BFGS
    logistic regression on the image encoder's [CLS] before projection, as the FLAVA paper probes,
    fitted on the first half of the items with C chosen on a fifth of that half, tested on the
    second half)."""
    from flava_kit.evaluation import class_embeddings, classification_report, linear_probe, retrieval_recall_at, text_features
    from flava_kit.evaluation.features import image_representations

    images = image_representations(model, data.processor(), [item["image"] for item in items])  # one pass serves all three
    labels = torch.tensor([item["label"] for item in items])
    report = classification_report(images["projected"] @ class_embeddings(model, tokenizer, names, text_length=data.text_length).T, labels)
    captions = text_features(model, tokenizer, [item["text"] for item in items], data.text_length)
    retrieval = retrieval_recall_at(images["projected"], captions, ks=(1,))
    half, encoded = len(items) // 2, images["cls"]  # the paper's probe input: [CLS] before projection
    probe = linear_probe(encoded[:half].numpy(), labels[:half].numpy(), encoded[half:].numpy(), labels[half:].numpy())
    return {
        "zero_shot_accuracy": report["acc@1"], "zero_shot_acc@5": report["acc@5"],
        "zero_shot_mean_per_class_recall": report["mean_per_class_recall"],
        "linear_probe_accuracy": probe["accuracy"], "linear_probe_C": probe["C"],
        "image_to_text_R@1": retrieval["image_to_text_R@1"], "text_to_image_R@1": retrieval["text_to_image_R@1"],
        "chance": 1 / len(names), "held_out_images": len(items),
    }  # fmt: skip


def shifted_accuracy(model: Any, data: Any, tokenizer: Any, size: int, image_size: int) -> float:
    """Zero-shot accuracy on ``size`` images of the same classes drawn by another routine
    (:class:`~flava_kit.data.shifted_shapes.ShiftedShapes`): what a model learnt beyond one drawing routine."""
    from flava_kit.data.shifted_shapes import ShiftedShapes
    from flava_kit.data.synthetic import class_names
    from flava_kit.evaluation import zero_shot_accuracy

    shifted = ShiftedShapes(size, image_size)
    items = [shifted[i] for i in range(size)]
    return zero_shot_accuracy(model, data.processor(), tokenizer, [item["image"] for item in items], [item["label"] for item in items],
                              class_names(), text_length=data.text_length)  # fmt: skip


@torch.no_grad()
def classification_accuracy(model: Any, data: Any, tokenizer: Any, items: list[dict], batch_size: int = 64) -> float:
    """A fine-tuned classifier's accuracy on labelled ``items``."""
    model.eval()
    correct, processor = 0, data.processor()
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        inputs = processor([item["image"] for item in chunk], codebook=False)
        encoded = tokenizer([item["text"] for item in chunk], padding="max_length", truncation=True, max_length=data.text_length, return_tensors="pt")
        device = next(model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        logits = model(**inputs, input_ids=encoded["input_ids"].to(device), attention_mask=encoded["attention_mask"].to(device)).logits.cpu()
        correct += (logits.argmax(1) == torch.tensor([item["label"] for item in chunk])).sum().item()
    return correct / len(items)
