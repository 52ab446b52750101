"""SigLIP's pairwise sigmoid loss (Zhai et al., ICCV 2023), gathered over every rank."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Weight
from flava_kit.losses.context import PretrainingContext
from flava_kit.losses.contrastive import contrastive_needs, gather_batches
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


@register("loss", "sigmoid_contrastive")
class SigmoidContrastiveLoss(nn.Module):
    """Every image-text pair scored alone: ``-log sigmoid(z * (t * x·y + b))``, z = 1 for a true
    pair and -1 otherwise, summed over the global batch's texts and averaged over images, times ``weight``.

    The temperature ``t = exp(logit_scale)`` and the bias ``logit_bias`` are this objective's own
    learnable parameters, initialised as in the paper (``t = 10``, ``b = -10``). Each rank scores its
    own images against every rank's texts (gathered with gradients), so under DDP the averaged loss
    and gradients equal one process on the joined batch. ``inputs`` as in ``global_contrastive``.
    Applies to paired batches; rows that are ITM negatives are not scored as images.
    """

    def __init__(
        self,
        weight: Weight = 1.0,
        temperature_init: float = 10.0,
        bias_init: float = -10.0,
        inputs: Literal["unmasked", "masked"] = "unmasked",
    ):
        super().__init__()
        if temperature_init <= 0:
            raise ValueError(f"temperature_init must be positive, got {temperature_init}")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(temperature_init)))
        self.logit_bias = nn.Parameter(torch.tensor(float(bias_init)))
        self.weight, self.inputs = weight, inputs
        self.needs = contrastive_needs(inputs)

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        if not context.paired:
            return None
        images, texts = context.features(self.inputs)
        return self.score(images, texts, context.itm_keep)

    def score(self, image_features: torch.Tensor, text_features: torch.Tensor, keep: torch.Tensor | None = None) -> LossOutput:
        """``*_features`` ``[B, D]`` (L2-normalised); ``keep`` ``[B]`` picks the images scored."""
        all_texts, offset = gather_batches(text_features)
        logits = image_features @ all_texts.T * self.logit_scale.exp() + self.logit_bias
        signs = -torch.ones_like(logits)
        rows = torch.arange(image_features.shape[0], device=logits.device)
        signs[rows, rows + offset] = 1.0
        if keep is not None:
            logits, signs = logits[keep], signs[keep]
        loss = -F.logsigmoid(signs * logits).sum() / max(logits.shape[0], 1)
        metrics = {"temperature": self.logit_scale.detach().exp(), "bias": self.logit_bias.detach()}
        return LossOutput(loss=loss * self.weight, logits=logits, metrics=metrics)
