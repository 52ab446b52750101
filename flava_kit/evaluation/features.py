"""Features of in-memory images and texts (``flava-kit embed``), and the default zero-shot prompt templates.

Evaluation streams datasets instead: see :mod:`flava_kit.evaluation.encode`."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from tqdm import tqdm

TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}")


def _flava(model: Any) -> Any:
    return getattr(model, "flava", model)  # FlavaForPreTraining holds its FlavaModel as .flava


@torch.no_grad()
def image_features(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 64) -> torch.Tensor:
    """``[N, D]`` L2-normalised image features (the contrastive projection) of in-memory images."""
    flava = _flava(model).eval()
    device = next(flava.parameters()).device
    chunks = [flava(pixel_values=processor(images[i : i + batch_size], codebook=False)["pixel_values"].to(device)).image_features.cpu()
              for i in tqdm(range(0, len(images), batch_size), desc="images", disable=None, leave=False)]  # fmt: skip
    return torch.cat(chunks)


@torch.no_grad()
def text_features(model: Any, tokenizer: Any, texts: Sequence[str], text_length: int = 32, batch_size: int = 256) -> torch.Tensor:
    """``[N, D]`` L2-normalised text features."""
    flava = _flava(model).eval()
    chunks = []
    for i in tqdm(range(0, len(texts), batch_size), desc="texts", disable=None, leave=False):
        encoded = tokenizer(list(texts[i : i + batch_size]), padding="max_length", truncation=True, max_length=text_length, return_tensors="pt")
        device = next(flava.parameters()).device
        chunks.append(flava(input_ids=encoded["input_ids"].to(device), attention_mask=encoded["attention_mask"].to(device)).text_features)
    return torch.cat(chunks).cpu()
