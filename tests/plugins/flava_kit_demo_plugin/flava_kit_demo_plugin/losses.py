"""A third-party pretraining objective: pull each true pair's image and text features together."""

from flava_kit.outputs import LossOutput
from torch import nn


class FeatureL2Loss(nn.Module):
    """Mean squared distance between paired image and text features (of the masked pass, so it
    needs nothing extra from the model), times ``weight``. Applies to paired batches."""

    needs = frozenset()

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, context):
        if not context.paired:
            return None
        images, texts = context.features("masked")
        distance = (context.kept(images) - context.kept(texts)).pow(2).sum(-1).mean()
        return LossOutput(loss=distance * self.weight, metrics={"distance": distance.detach()})


class BatchMarginLoss(nn.Module):
    """A batch-level objective: each true pair's image scores its own text above the batch's most
    similar other text by ``margin`` (a hinge on cosine similarity), times ``weight``. It compares
    items across the batch, so it declares itself batch-level (``batch_rows`` / ``batch_loss``):
    under gradient accumulation flava_kit scores the whole step's batch with it, with no code here."""

    needs = frozenset()

    def __init__(self, weight: float = 1.0, margin: float = 0.2):
        super().__init__()
        self.weight, self.margin = weight, margin

    def forward(self, context):
        rows = self.batch_rows(context)
        return None if rows is None else self.batch_loss(rows, context.logit_scale)

    def batch_rows(self, context):
        if not context.paired:
            return None
        images, texts = context.features("masked")
        return {"image": images, "text": texts}

    def batch_loss(self, rows, logit_scale):
        import torch

        similarity = rows["image"] @ rows["text"].T
        own = similarity.diagonal()
        others = similarity.masked_fill(torch.eye(len(own), dtype=torch.bool, device=own.device), -2.0).amax(1)
        loss = (self.margin - own + others).clamp(min=0).mean()
        return LossOutput(loss=loss * self.weight, terms=len(own))
