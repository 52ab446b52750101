"""The VQA head: a score for every answer of an answer vocabulary."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.constraints import Epsilon, Probability, Size, Vocabulary
from flava_kit.layers.init import flava_init_
from flava_kit.registry import register


@register("head", "vqa")
class VQAHead(nn.Module):
    """Pooled [CLS_M] ``[B, hidden_size]`` -> ``[B, num_answers]`` logits, one independent (sigmoid)
    score per answer: linear to twice the width, GELU, LayerNorm, dropout, linear (the two-layer
    head of ViLT and of TorchMultimodal's FLAVA fine-tuning)."""

    def __init__(self, hidden_size: Size = 768, num_answers: Vocabulary = 3129, dropout: Probability = 0.0, layer_norm_eps: Epsilon = 1e-12):
        super().__init__()
        self.hidden_size, self.num_answers = hidden_size, num_answers
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 2 * hidden_size),
            nn.GELU(),
            nn.LayerNorm(2 * hidden_size, eps=layer_norm_eps),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(2 * hidden_size, num_answers),
        )
        flava_init_(self)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled)
