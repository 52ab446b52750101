"""Features of a (pretrained) FLAVA model, in batches under no_grad on its device; zero-shot scores and retrieval."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from tqdm import tqdm

from flava_kit.evaluation.metrics import classification_report, retrieval_recall_at

TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}")


def _flava(model: Any) -> Any:
    return getattr(model, "flava", model)  # FlavaForPreTraining holds its FlavaModel as .flava


@torch.no_grad()
def image_representations(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Both image representations from one pass: ``projected`` ``[N, D]``, the L2-normalised
    contrastive projection (what zero-shot and retrieval compare), and ``cls`` ``[N, H]``, the image
    encoder's [CLS] state before any projection (what the FLAVA paper's linear probes read)."""
    flava = _flava(model).eval()
    device = next(flava.parameters()).device  # the run's device
    projected, cls = [], []
    for i in tqdm(range(0, len(images), batch_size), desc="images", disable=None, leave=False):
        out = flava(pixel_values=processor(images[i : i + batch_size], codebook=False)["pixel_values"].to(device))
        projected.append(out.image_features)
        cls.append(out.image_embeddings[:, 0])
    return {"projected": torch.cat(projected).cpu(), "cls": torch.cat(cls).cpu()}


def image_features(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 64,
                   representation: Literal["projected", "cls"] = "projected") -> torch.Tensor:  # fmt: skip
    """``[N, D]`` image features of one representation (see :func:`image_representations`)."""
    return image_representations(model, processor, images, batch_size)[representation]


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


def class_embeddings(model: Any, tokenizer: Any, class_names: Sequence[str], templates: Sequence[str] = TEMPLATES,
                     text_length: int = 32) -> torch.Tensor:  # fmt: skip
    """``[C, D]``: each class the normalised mean of its prompts' features (CLIP's template ensembling)."""
    prompts = [template.format(name) for name in class_names for template in templates]
    per_class = text_features(model, tokenizer, prompts, text_length).view(len(class_names), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(per_class, dim=-1)


def zero_shot_scores(model: Any, processor: Any, tokenizer: Any, images: Sequence[Any], class_names: Sequence[str],
                     templates: Sequence[str] = TEMPLATES, text_length: int = 32) -> torch.Tensor:  # fmt: skip
    """``[N, C]`` similarities of ``images`` to the class prompt embeddings."""
    return image_features(model, processor, images) @ class_embeddings(model, tokenizer, class_names, templates, text_length).T


def zero_shot_accuracy(
    model: Any,
    processor: Any,
    tokenizer: Any,
    images: Sequence[Any],
    labels: Sequence[int],
    class_names: Sequence[str],
    templates: Sequence[str] = TEMPLATES,
    text_length: int = 32,
) -> float:
    """Accuracy of classifying ``images`` by their nearest class prompt embedding."""
    scores = zero_shot_scores(model, processor, tokenizer, images, class_names, templates, text_length)
    return classification_report(scores, torch.as_tensor(labels), ks=(1,))["acc@1"]


def retrieval_recall(
    model: Any, processor: Any, tokenizer: Any, images: Sequence[Any], texts: Sequence[str], ks: Sequence[int] = (1, 5, 10), text_length: int = 32
) -> dict[str, float]:
    """Recall@k of image->text and text->image retrieval over aligned ``images`` and ``texts`` (chunked)."""
    return retrieval_recall_at(image_features(model, processor, images), text_features(model, tokenizer, texts, text_length), ks)


@torch.no_grad()
def classifier_scores(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 64) -> torch.Tensor:
    """``[N, classes]`` logits of a fine-tuned image classifier (``flava_classifier``, modality image)."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model(**{k: v.to(device) for k, v in processor(images[i : i + batch_size], codebook=False).items()}).logits.cpu()
              for i in tqdm(range(0, len(images), batch_size), desc="images", disable=None, leave=False)]  # fmt: skip
    return torch.cat(chunks)
