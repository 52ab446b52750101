"""Image-text matching: classify fused pairs as matched or not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Size, Weight
from flava_kit.heads import ITMHead
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


@register("loss", "itm")
class ITMLoss(nn.Module):
    """An ITM head on the fused sequence and the cross-entropy against ``itm_labels``, times ``weight``."""

    def __init__(self, hidden_size: Size = 768, weight: Weight = 1.0):
        super().__init__()
        self.head = ITMHead(hidden_size)
        self.hidden_size, self.weight = hidden_size, weight

    def forward(self, multimodal_states: torch.Tensor, itm_labels: torch.Tensor) -> LossOutput:
        """``multimodal_states`` ``[B, L, H]``; ``itm_labels`` ``[B]``, 1 for a true pair, 0 for a negative."""
        logits = self.head(multimodal_states)
        return LossOutput(loss=F.cross_entropy(logits, itm_labels) * self.weight, logits=logits)
