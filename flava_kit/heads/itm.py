"""The image-text matching head: does this text describe this image?"""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.constraints import Size
from flava_kit.layers import Pooler
from flava_kit.layers.init import flava_init_
from flava_kit.registry import register


@register("head", "itm")
class ITMHead(nn.Module):
    """Pooled [CLS_M] -> 2 logits (0: not a pair, 1: a pair) (HF ``FlavaITMHead``)."""

    def __init__(self, hidden_size: Size = 768):
        super().__init__()
        self.hidden_size = hidden_size
        self.pooler = Pooler(hidden_size)
        self.classifier = nn.Linear(hidden_size, 2)
        flava_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: the fused sequence ``[B, L, H]`` with [CLS_M] first -> ``[B, 2]``."""
        return self.classifier(self.pooler(x))
