"""A pretraining objective for flava_kit (contract: ``flava_kit.contracts.Objective``): on paired
batches, the cosine distance between each image's and its own caption's features."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.outputs import LossOutput


class Objective(nn.Module):
    """``1 - cos(image, text)`` averaged over the true pairs of a paired batch, times ``weight``."""

    needs = frozenset()  # the masked pass's features are enough: the model runs nothing extra

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, context) -> LossOutput | None:
        """None on batches without pairs (image-only, text-only)."""
        if not context.paired:
            return None
        images, texts = context.features("masked")
        distance = 1 - torch.nn.functional.cosine_similarity(context.kept(images), context.kept(texts), dim=-1).mean()
        return LossOutput(loss=distance * self.weight, metrics={"cosine_distance": distance.detach()})
