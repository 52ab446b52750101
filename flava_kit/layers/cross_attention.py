"""The co-attention layer: self-attention, cross-attention to another sequence, MLP (shared :class:`Attention`)."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.layers.transformer import Attention, Mlp


class CrossAttentionLayer(nn.Module):
    """Pre-LN block: self-attention, then cross-attention to a (normalised) context, then MLP."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float = 1e-12,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attn = Attention(hidden_size, num_heads, qkv_bias, dropout, attention_dropout)
        self.norm_cross = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.norm_context = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.cross_attn = Attention(hidden_size, num_heads, qkv_bias, dropout, attention_dropout, cross=True)
        self.norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = Mlp(hidden_size, intermediate_size, dropout)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.attn(self.norm1(x), self_mask, residual=x)
        x = self.cross_attn(self.norm_cross(x), context_mask, residual=x, context=self.norm_context(context))
        return self.mlp(self.norm2(x), residual=x)
