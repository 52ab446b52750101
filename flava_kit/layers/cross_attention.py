"""Cross-attention: queries from one sequence, keys and values from another (SDPA)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from flava_kit.layers.transformer import Attention, Mlp, linear


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` over ``context``; adds ``residual`` to its output if given."""

    def __init__(self, hidden_size: int, num_heads: int, qkv_bias: bool = True, dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.q = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
        self.kv = nn.Linear(hidden_size, 2 * hidden_size, bias=qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` ``[B, Lq, H]`` attends to ``context`` ``[B, Lk, H]``; ``context_mask``: boolean SDPA mask over keys."""
        q = rearrange(linear(x, self.q), "b l (h d) -> b h l d", h=self.num_heads)
        k, v = rearrange(linear(context, self.kv), "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=context_mask, dropout_p=dropout)
        return linear(rearrange(out, "b h l d -> b l (h d)"), self.proj, residual=residual, dropout=self.dropout)


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
        self.cross_attn = CrossAttention(hidden_size, num_heads, qkv_bias, dropout, attention_dropout)
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
        x = self.cross_attn(self.norm_cross(x), self.norm_context(context), context_mask, residual=x)
        return self.mlp(self.norm2(x), residual=x)
