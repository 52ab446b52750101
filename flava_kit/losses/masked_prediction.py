"""Cross-entropy on masked positions: FLAVA's MIM, MLM, MMM-image and MMM-text objectives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Epsilon, Size, Vocabulary, Weight
from flava_kit.heads import MaskedPredictionHead
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


@register("loss", "masked_prediction")
class MaskedPredictionLoss(nn.Module):
    """A masked-prediction head and the mean cross-entropy at the labelled positions, times ``weight``.

    Positions whose label is ``ignore_index`` are skipped before the head runs (no logits are
    computed for them). With nothing labelled, the loss is exactly zero (HF's is NaN), still
    connected to the graph so a backward pass works.
    """

    def __init__(
        self,
        hidden_size: Size = 768,
        vocab_size: Vocabulary = 8192,
        layer_norm_eps: Epsilon = 1e-12,
        weight: Weight = 1.0,
        ignore_index: int = -100,
    ):
        super().__init__()
        self.head = MaskedPredictionHead(hidden_size, vocab_size, layer_norm_eps)
        self.hidden_size, self.vocab_size = hidden_size, vocab_size
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, states: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """``states`` ``[B, N, hidden_size]``, ``labels`` ``[B, N]`` (``ignore_index`` where not masked)."""
        if states.shape[:2] != labels.shape:
            raise ValueError(f"labels: expected shape {tuple(states.shape[:2])} to match the states, got {tuple(labels.shape)}")
        selected = labels != self.ignore_index
        logits = self.head(states[selected])
        if logits.shape[0] == 0:
            return LossOutput(loss=logits.sum() * 0.0, logits=logits)
        return LossOutput(loss=F.cross_entropy(logits, labels[selected]) * self.weight, logits=logits)
