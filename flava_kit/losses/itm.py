"""Image-text matching: classify fused pairs as matched or not."""

from __future__ import annotations

from typing import Iterable

import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Size, Weight
from flava_kit.heads import ITMHead
from flava_kit.losses.context import PretrainingContext
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


@register("loss", "itm")
class ITMLoss(nn.Module):
    """An ITM head on the fused sequence's [CLS_M] and the cross-entropy against ``itm_labels``, times ``weight``.

    Applies to paired batches with ``itm_labels`` (1 for a true pair, 0 for a negative).
    """

    needs = frozenset({"fusion"})

    def __init__(self, hidden_size: Size = 768, weight: Weight = 1.0):
        super().__init__()
        self.head = ITMHead(hidden_size)
        self.hidden_size, self.weight = hidden_size, weight

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        labels = context.inputs.get("itm_labels")
        if not context.paired or labels is None:
            return None
        states = context.masked.multimodal_embeddings  # every row: negatives are what ITM learns from
        logits = self.head(states[:, context.layout.cls_m :])  # the head pools its first position
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return LossOutput(loss=F.cross_entropy(logits, labels) * self.weight, logits=logits, metrics={"accuracy": accuracy})

    def fit(self, parts: dict) -> Iterable[str]:
        """The head must be as wide as the fusion."""
        if parts["fusion"].hidden_size != self.hidden_size:
            yield f"hidden_size {self.hidden_size} != fusion.hidden_size {parts['fusion'].hidden_size}"
