"""FLAVA's global contrastive loss, gathered over every rank when training is distributed."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Weight
from flava_kit.losses.context import PretrainingContext
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


def gather_batches(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' ``x`` concatenated (gradients flow back to every rank), and this rank's offset."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    return torch.cat(dist_fn.all_gather(x)), dist.get_rank() * x.shape[0]


def positive_rows(context: PretrainingContext) -> torch.Tensor:
    """``[B]`` True at the rows that are true pairs (ITM label 1; every row without ITM labels).
    The batch-level loss picks its scored rows from these over the whole batch."""
    labels = context.inputs.get("itm_labels")
    if labels is None:
        return torch.ones(context.masked.image_features.shape[0], dtype=torch.bool, device=context.masked.image_features.device)
    return labels != 0


def scored_rows(positive: torch.Tensor) -> torch.Tensor:
    """The rows a contrastive loss scores: the true pairs, or every row if the batch has none (as HF does)."""
    return positive | ~positive.any()


def contrastive_needs(inputs: str) -> frozenset[str]:
    """What a contrastive objective reading ``inputs`` (``unmasked`` or ``masked``) needs from the model."""
    return frozenset({"unmasked"}) if inputs == "unmasked" else frozenset()


@register("loss", "global_contrastive")
class GlobalContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between image and text features over the *global* batch, times ``weight``.

    Each rank scores its own images against every rank's texts (and vice versa), gathered with
    ``torch.distributed.nn.functional.all_gather`` so gradients reach every rank. The temperature
    is the model's ``exp(logit_scale)``; in training the scale is clamped to [``logit_scale_min``,
    ``logit_scale_max``] (0 and ln 100) as FLAVA does. ``inputs: unmasked`` (HF's semantics)
    compares features of the unmasked images and texts, which costs a second encoder pass when the
    batch is masked; ``inputs: masked`` uses the masked pass's features and skips it.
    Applies to paired batches, scoring the true pairs. Batch-level (see the objective contract):
    under gradient accumulation it scores the whole step's batch.
    """

    def __init__(self, weight: Weight = 1.0, logit_scale_min: float = 0.0, logit_scale_max: float = math.log(100),
                 inputs: Literal["unmasked", "masked"] = "unmasked"):  # fmt: skip
        super().__init__()
        self.weight, self.logit_scale_min, self.logit_scale_max = weight, logit_scale_min, logit_scale_max
        self.inputs = inputs
        self.needs = contrastive_needs(inputs)

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        rows = self.batch_rows(context)
        return None if rows is None else self.batch_loss(rows, context.logit_scale)

    def batch_rows(self, context: PretrainingContext) -> dict[str, torch.Tensor] | None:
        """This batch's image and text features and which rows are true pairs (None: not a paired batch)."""
        if not context.paired:
            return None
        images, texts = context.features(self.inputs)
        return {"image": images, "text": texts, "positive": positive_rows(context)}

    def batch_loss(self, rows: dict[str, torch.Tensor], logit_scale: torch.Tensor) -> LossOutput:
        """The loss over ``rows`` (one batch's, or every micro-batch's concatenated)."""
        return self.score(rows["image"], rows["text"], logit_scale, scored_rows(rows["positive"]))

    def score(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              keep: torch.Tensor | None = None) -> LossOutput:  # fmt: skip
        """``*_features`` ``[B, D]`` (L2-normalised); ``keep`` ``[B]`` picks the rows scored (positive pairs)."""
        if self.training:
            with torch.no_grad():
                logit_scale.clamp_(self.logit_scale_min, self.logit_scale_max)
        all_images, offset = gather_batches(image_features)
        all_texts, _ = gather_batches(text_features)
        scale = logit_scale.exp()
        per_image = image_features @ all_texts.T * scale
        per_text = text_features @ all_images.T * scale
        labels = torch.arange(image_features.shape[0], device=image_features.device) + offset
        if keep is not None:
            per_image, per_text, labels = per_image[keep], per_text[keep], labels[keep]
        loss = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
        return LossOutput(loss=loss * self.weight, logits=(per_image, per_text), metrics={"logit_scale": logit_scale.detach()},
                          terms=labels.shape[0])  # fmt: skip
