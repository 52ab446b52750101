"""CLIP_benchmark's webdataset layout for ``eval_vs_clip_benchmark.py``: the held-out shapes written by
clip-benchmark's own exporter, read back by its ``wds`` builder and evaluated by its zero-shot and
retrieval code, and our eval recipe over the same folders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from flava_kit.train.device import autocast

TEMPLATES = ("a {}", "a photo of a {}", "a picture of a {}", "the {}")
"""Zero-shot prompts in flava_kit's form; clip-benchmark's names the slot ``{c}``."""
CAPTIONS = ("a {}", "a photo of a {}", "a picture of a {}", "the {}", "a picture of the {}")
"""The retrieval set's five captions of an image, its class name in the slot (each then numbered)."""
NUMBER_WORDS = ("above", "below", "left", "right", "and", "of", "the", "small")
"""Base-8 digits in vocabulary words: a caption's number, so that no two captions are the same."""
KS = (1, 5, 10)


def spelled(number: int, digits: int) -> str:
    """``number`` in base 8 as ``digits`` :data:`NUMBER_WORDS` (captions end in a shape word, so the number is where it starts)."""
    return " ".join(NUMBER_WORDS[number // 8**place % 8] for place in reversed(range(digits)))


def write_wds(root: Path, count: int, image_size: int, seed: int) -> None:
    """The held-out shapes in CLIP_benchmark's layout, by its exporter: ``root/classification`` (class
    names, the templates with ``{c}``) and ``root/retrieval`` (five numbered captions each), 4 shards each."""
    import contextlib
    import io
    import warnings

    from clip_benchmark.webdataset_builder import PIL_to_bytes, convert_dataset, convert_retrieval_dataset

    from flava_kit.data.synthetic import SyntheticShapes, class_names

    class Exported(list):  # what the exporter reads: (image, label or captions) pairs, with classes and templates
        classes, templates = class_names(), [template.replace("{}", "{c}") for template in TEMPLATES]

    names, shapes, to_bytes = class_names(), SyntheticShapes(count, image_size, seed=seed, two_shapes=0.0), PIL_to_bytes("webp")
    items = [shapes[index] for index in range(count)]
    digits = max(1, math.ceil(math.log(count * len(CAPTIONS), 8)))
    captions = [[f"{caption.format(names[item['label']])} {spelled(i * len(CAPTIONS) + j, digits)}" for j, caption in enumerate(CAPTIONS)]
                for i, item in enumerate(items)]  # fmt: skip
    per_shard = max(1, math.ceil(count / 4))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # it prints, and warns about its 8 workers
        warnings.simplefilter("ignore")
        convert_dataset(Exported((to_bytes(item["image"]), item["label"]) for item in items), "test", str(root / "classification"),
                        max_count=per_shard, verbose=False)  # fmt: skip
        convert_retrieval_dataset(Exported((to_bytes(item["image"]), text) for item, text in zip(items, captions)), "test",
                                  str(root / "retrieval"), max_count=per_shard, verbose=False)  # fmt: skip


def wds_loader(root: Path, task: str, transform, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    """clip-benchmark's own ``wds`` dataset of a local folder, batched as its CLI loads one."""
    from clip_benchmark.datasets.builder import build_dataset

    dataset = build_dataset(f"wds/{root.name}", root=str(root), transform=transform, split="test", task=task)
    loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, shuffle=False, num_workers=workers)
    loader.classes, loader.templates = dataset.classes, dataset.templates
    return loader


def clip_benchmark_wds_zero_shot(triple: tuple, root: Path, batch_size: int, workers: int, device: str,
                                 precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor, Any]:  # fmt: skip
    """(logits, targets, loader) of clip-benchmark's zero-shot classifier and loop over its ``wds``
    loader of ``root/classification``, with the class names and templates that loader read."""
    from clip_benchmark.metrics.zeroshot_classification import run_classification, zero_shot_classifier

    model, transform, tokenizer = triple
    with autocast(torch.device(device), precision):
        loader = wds_loader(root / "classification", "zeroshot_classification", transform, batch_size, workers)
        classifier = zero_shot_classifier(model, tokenizer, loader.classes, loader.templates, device, amp=precision != "fp32")
        logits, target = run_classification(model, classifier, loader, device, amp=precision != "fp32")
    return logits.float(), target, loader


def clip_benchmark_wds_retrieval(triple: tuple, root: Path, batch_size: int, workers: int, device: str, precision: str = "fp32") -> dict:
    """clip-benchmark's ``zeroshot_retrieval.evaluate`` over its ``wds`` loader of ``root/retrieval``."""
    from clip_benchmark.metrics import zeroshot_retrieval

    model, transform, tokenizer = triple
    with autocast(torch.device(device), precision):
        loader = wds_loader(root / "retrieval", "zeroshot_retrieval", transform, batch_size, workers)
        return zeroshot_retrieval.evaluate(model, loader, tokenizer, device, amp=precision != "fp32", recall_k_list=list(KS))


def wds_recipe(root: Path, batch_size: int, workers: int, device: str, cache: Path, run: str, task: str | None = None):
    """Our eval recipe on the layout: zero-shot (the dataset's names and templates) and retrieval; or one of them."""
    from flava_kit.evaluation.recipe import load_eval_recipe

    tasks = {"wds_zero_shot": {"type": "zero_shot_classification", "data": {"type": "webdataset", "urls": str(root / "classification")}},
             "wds_retrieval": {"type": "retrieval", "data": {"type": "webdataset", "urls": str(root / "retrieval")}, "ks": list(KS)}}  # fmt: skip
    settings = {"batch_size": batch_size, "workers": workers, "device": device, "cache": str(cache)}
    chosen = {name: node for name, node in tasks.items() if task is None or name == task}
    return load_eval_recipe({"recipe_version": 1, "tasks": chosen, "settings": settings}, models={"model": run})
