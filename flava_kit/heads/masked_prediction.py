"""The head that predicts masked tokens (image codebook ids or word pieces) from hidden states."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Epsilon, Size, Vocabulary
from flava_kit.layers.init import flava_init_
from flava_kit.registry import register


@register("head", "masked_prediction")
class MaskedPredictionHead(nn.Module):
    """``decoder(norm(gelu(dense(x))))``: ``[..., hidden_size]`` -> ``[..., vocab_size]`` logits (HF ``FlavaMaskedPredictionHead``)."""

    def __init__(self, hidden_size: Size = 768, vocab_size: Vocabulary = 8192, layer_norm_eps: Epsilon = 1e-12):
        super().__init__()
        self.hidden_size, self.vocab_size = hidden_size, vocab_size
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        flava_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(x))))
