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
