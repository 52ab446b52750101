"""SigLIP's pairwise sigmoid loss (Zhai et al., ICCV 2023), gathered over every rank."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Weight
from flava_kit.losses.context import PretrainingContext
from flava_kit.losses.contrastive import contrastive_needs, gather_batches, positive_rows, scored_rows
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


def gather_ids(ids: torch.Tensor) -> torch.Tensor:
    """All ranks' token ids (equal shapes), concatenated in rank order; no gradients."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids
    parts = [torch.empty_like(ids) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, ids.contiguous())
    return torch.cat(parts)


@register("loss", "sigmoid_contrastive")
class SigmoidContrastiveLoss(nn.Module):
    """Every image-text pair scored alone: ``-log sigmoid(z * (t * x·y + b))``, z = 1 for a true
    pair and -1 otherwise, summed over the global batch's texts and averaged over images, times ``weight``.

    The temperature ``t = exp(logit_scale)`` and the bias ``logit_bias`` are this objective's own
    learnable parameters, initialised as in the paper (``t = 10``, ``b = -10``). Each rank scores its
    own images against every rank's texts (gathered with gradients), so under DDP the averaged loss
    and gradients equal one process on the joined batch. ``inputs`` as in ``global_contrastive``.
    Applies to paired batches; rows that are ITM negatives are not scored as images. Batch-level
    (see the objective contract): under gradient accumulation it scores the whole step's batch.

    ``same_text_positive``: a text identical (token for token) to an image's own caption scores as
    a true pair too. Scored alone, each pair of a batch with repeated captions (class-name
    captions, templated data) is otherwise told both "match" and "do not match" for the same
    image and words; softmax's InfoNCE only spreads its mass, the sigmoid loss contradicts itself.
    """

    def __init__(
        self,
        weight: Weight = 1.0,
        temperature_init: float = 10.0,
        bias_init: float = -10.0,
        inputs: Literal["unmasked", "masked"] = "unmasked",
        same_text_positive: bool = False,
    ):
        super().__init__()
        if temperature_init <= 0:
            raise ValueError(f"temperature_init must be positive, got {temperature_init}")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(temperature_init)))
        self.logit_bias = nn.Parameter(torch.tensor(float(bias_init)))
        self.weight, self.inputs, self.same_text_positive = weight, inputs, same_text_positive
        self.needs = contrastive_needs(inputs)

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        rows = self.batch_rows(context)
        return None if rows is None else self.batch_loss(rows, context.logit_scale)

    def batch_rows(self, context: PretrainingContext) -> dict[str, torch.Tensor] | None:
        """This batch's features, true-pair rows and (with ``same_text_positive``) captions; None: not a paired batch."""
        if not context.paired:
            return None
        images, texts = context.features(self.inputs)
        rows = {"image": images, "text": texts, "positive": positive_rows(context)}
        if self.same_text_positive:
            rows["token_ids"] = context.inputs["input_ids"]
        return rows

    def batch_loss(self, rows: dict[str, torch.Tensor], logit_scale: torch.Tensor) -> LossOutput:
        """The loss over ``rows`` (one batch's, or every micro-batch's concatenated); ``logit_scale``
        is the model's, unused: this objective learns its own temperature."""
        return self.score(rows["image"], rows["text"], scored_rows(rows["positive"]), rows.get("token_ids"))

    def score(self, image_features: torch.Tensor, text_features: torch.Tensor, keep: torch.Tensor | None = None,
              token_ids: torch.Tensor | None = None) -> LossOutput:  # fmt: skip
        """``*_features`` ``[B, D]`` (L2-normalised); ``keep`` ``[B]`` picks the images scored;
        ``token_ids`` ``[B, L]`` (the captions), when given, make texts equal to a row's caption positives too."""
        all_texts, offset = gather_batches(text_features)
        logits = image_features @ all_texts.T * self.logit_scale.exp() + self.logit_bias
        signs = -torch.ones_like(logits)
        rows = torch.arange(image_features.shape[0], device=logits.device)
        signs[rows, rows + offset] = 1.0
        if token_ids is not None:
            all_ids = gather_ids(token_ids)
            same = (token_ids[:, None, :] == all_ids[None, :, :]).all(-1)
            signs = torch.where(same, 1.0, signs)
        if keep is not None:
            logits, signs = logits[keep], signs[keep]
        loss = -F.logsigmoid(signs * logits).sum() / max(logits.shape[0], 1)
        metrics = {"temperature": self.logit_scale.detach().exp(), "bias": self.logit_bias.detach()}
        return LossOutput(loss=loss * self.weight, logits=logits, metrics=metrics, terms=logits.shape[0])
