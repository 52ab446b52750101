"""A flava_kit model as the ``clip-benchmark`` package evaluates open_clip models: a model with
``encode_image`` / ``encode_text``, an image transform and a tokenizer.

    model, transform, tokenizer = load_for_clip_benchmark("runs/demo")
    dataset = torchvision.datasets.ImageFolder("my_photos/", transform=transform)
    from clip_benchmark.metrics import zeroshot_classification as zs
    classifier = zs.zero_shot_classifier(model, tokenizer, dataset.classes, ["a photo of a {c}."], "cpu", amp=False)
    logits, target = zs.run_classification(model, classifier, DataLoader(dataset, batch_size=64), "cpu", amp=False)

(clip-benchmark 1.6.2's top-level ``evaluate`` calls ``float()`` on a one-element array, which
NumPy 2.4 refuses; its classifier and classification loop work.) ``flava-kit eval RUN --data DIR``
gives the same numbers (``benchmarks/eval_vs_clip_benchmark.py`` checks it).

Install the extra: ``pip install 'flava_kit[clip-benchmark]'``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn


class ClipBenchmarkModel(nn.Module):
    """open_clip's interface over a FLAVA: image and text features (normalised projections)."""

    def __init__(self, model: nn.Module, pad_token_id: int = 0):
        super().__init__()
        self.flava = getattr(model, "flava", model)
        self.pad_token_id = pad_token_id

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` processed pixels -> ``[B, D]``."""
        return self.flava(pixel_values=images).image_features

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` token ids (padding where the tokenizer padded) -> ``[B, D]``."""
        return self.flava(input_ids=tokens, attention_mask=(tokens != self.pad_token_id).long()).text_features


def clip_benchmark_triple(model: nn.Module, processor: Any, tokenizer: Any, text_length: int) -> tuple[ClipBenchmarkModel, Callable, Callable]:
    """(model, image transform, tokenizer) in the shapes clip-benchmark's loaders return."""

    def transform(image: Any) -> torch.Tensor:
        return processor([image.convert("RGB")], codebook=False)["pixel_values"][0]

    def tokenize(texts: Sequence[str]) -> torch.Tensor:
        encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=text_length, return_tensors="pt")
        return encoded["input_ids"]

    return ClipBenchmarkModel(model, tokenizer.pad_token_id or 0).eval(), transform, tokenize


def load_for_clip_benchmark(run: str) -> tuple[ClipBenchmarkModel, Callable, Callable]:
    """A run's latest checkpoint (or any model :func:`~flava_kit.checkpoints.loading.load_model` reads)
    as clip-benchmark's (model, transform, tokenizer), on the CPU."""
    from flava_kit.checkpoints.loading import load_model

    loaded = load_model(run)
    return clip_benchmark_triple(loaded.model, loaded.processor(), loaded.tokenizer, loaded.text_length)
