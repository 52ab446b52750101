"""A classification head for fine-tuning."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.constraints import Epsilon, Probability, Size, Vocabulary
from flava_kit.layers.init import flava_init_
from flava_kit.registry import register


@register("head", "classifier")
class ClassifierHead(nn.Module):
    """Pooled features ``[B, hidden_size]`` -> LayerNorm, dropout, linear -> ``[B, num_classes]`` logits
    (``num_classes: 1``: one score per item, a regression head)."""

    def __init__(self, hidden_size: Size = 768, num_classes: Vocabulary = 2, dropout: Probability = 0.0, layer_norm_eps: Epsilon = 1e-12):
        super().__init__()
        self.hidden_size, self.num_classes = hidden_size, num_classes
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(hidden_size, num_classes)
        flava_init_(self)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.norm(pooled)))
