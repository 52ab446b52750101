"""A loss pulling paired image and text features together."""

import torch
from torch import nn


class FeatureL2Loss(nn.Module):
    """Mean squared distance between paired image and text features, times ``weight``."""

    def __init__(self, weight: float = 1.0, name: str = "feature_l2"):
        super().__init__()
        self.weight = weight
        self.name = name

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        return self.weight * (image_features - text_features).pow(2).sum(-1).mean()
