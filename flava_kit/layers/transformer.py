"""One pre-LN transformer layer, shared by the image, text and multimodal encoders.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with q/k/v
projected by one fused linear layer; no attention probabilities are stored, and dropout is only
called when its probability is non-zero. The weights map 1:1 onto HF FLAVA's
(``checkpoints/hf.py`` splits and joins the fused q/k/v).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from flava_kit.outputs import EncoderOutput


# oneDNN's linear with a fused epilogue (GELU or a residual add): the kernel torch.compile's CPU
# backend emits. At FLAVA's shapes it beats the MKL GEMM behind F.linear by ~13% and saves a pass
# over the output. It has no autograd formula, so it serves fp32 CPU inference only. It is a
# private op: FLAVA_KIT_ONEDNN=0 (or set_onednn_linear(False)) turns it off, a torch build without
# it takes the plain path, and a call it rejects turns it off for the process, with a warning.
def _onednn_linear_op() -> Any:
    if os.environ.get("FLAVA_KIT_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_ONEDNN_LINEAR = _onednn_linear_op()


def set_onednn_linear(enabled: bool) -> bool:
    """Use the fused oneDNN inference path (where this torch build has it) or not; returns whether it is in use."""
    global _ONEDNN_LINEAR
    _ONEDNN_LINEAR = _onednn_linear_op() if enabled else None
    return _ONEDNN_LINEAR is not None


def _fused_linear(x: torch.Tensor, layer: nn.Linear, gelu: bool, residual: torch.Tensor | None) -> torch.Tensor | None:
    """The oneDNN call for ``linear``, or None where it does not apply (the caller takes the plain path)."""
    if residual is not None and gelu:
        return None
    try:
        if residual is not None:
            return _ONEDNN_LINEAR.binary(x, residual, layer.weight, layer.bias, "add")
        return _ONEDNN_LINEAR(x, layer.weight, layer.bias, "gelu" if gelu else "none", [], "none" if gelu else "")
    except (RuntimeError, AttributeError, TypeError) as exc:
        set_onednn_linear(False)
        warnings.warn(f"oneDNN fused linear failed ({type(exc).__name__}: {exc}); using the plain path from now on", stacklevel=3)
        return None


def _onednn_applies(x: torch.Tensor, layer: nn.Linear) -> bool:
    return (
        _ONEDNN_LINEAR is not None
        and isinstance(layer, nn.Linear)  # not a wrapper that computes more than its weight (peft's LoRA layers)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))
        and not torch.compiler.is_compiling()  # inductor fuses on its own
        and not torch.is_autocast_enabled("cpu")  # autocast casts F.linear's inputs; the fused op would stay fp32
    )


def linear(
    x: torch.Tensor,
    layer: nn.Linear,
    *,
    gelu: bool = False,
    residual: torch.Tensor | None = None,
    dropout: nn.Module | None = None,
) -> torch.Tensor:
    """``residual + dropout(act(layer(x)))`` with ``act`` exact GELU or identity; each part optional.

    One fused oneDNN call in fp32 CPU inference, plain PyTorch ops otherwise.
    """
    active_dropout = dropout is not None and dropout.training
    if not active_dropout and _onednn_applies(x, layer):
        fused = _fused_linear(x, layer, gelu, residual)
        if fused is not None:
            return fused
    y = layer(x)
    if gelu:
        y = F.gelu(y)
    if active_dropout:
        y = dropout(y)
    return y if residual is None else residual + y


def run_layer(layer: nn.Module, checkpointed: bool, *args: torch.Tensor | None) -> torch.Tensor:
    """``layer(*args)``, recomputing its activations in the backward pass when ``checkpointed``
    (and training with autograd on) instead of storing them."""
    if checkpointed and layer.training and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


def padding_to_attention_mask(padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, L]`` mask (1 = real token, 0 = padding) -> boolean ``[B, 1, 1, L]`` SDPA mask.

    Returns None when nothing is padded, so SDPA can take its fastest, mask-free path.
    """
    if padding_mask is None:
        return None
    keep = padding_mask.bool()
    if bool(keep.all()):
        return None
    return keep[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention through SDPA; adds ``residual`` to its output if given.

    Self-attention projects q/k/v with one fused linear layer (``qkv``). With ``cross=True`` the
    queries come from ``x`` (``q``) and keys and values from a ``context`` sequence (``kv``), as in
    co-attention fusion.
    """

    def __init__(
        self, hidden_size: int, num_heads: int, qkv_bias: bool = True, dropout: float = 0.0, attention_dropout: float = 0.0, cross: bool = False
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.cross = cross
        if cross:
            self.q = nn.Linear(hidden_size, hidden_size, bias=qkv_bias)
            self.kv = nn.Linear(hidden_size, 2 * hidden_size, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``[B, L, H]``; ``attn_mask``: boolean, broadcastable to ``[B, heads, L, Lk]``;
        ``context``: ``[B, Lk, H]``, the keys' and values' sequence (cross-attention only)."""
        if self.cross:
            if context is None:
                raise ValueError("cross-attention needs a context sequence")
            q = rearrange(linear(x, self.q), "b l (h d) -> b h l d", h=self.num_heads)
            k, v = rearrange(linear(context, self.kv), "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        else:
            q, k, v = rearrange(linear(x, self.qkv), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        # SDPA's CPU and GPU kernels write [B, L, heads, D] memory, so this is a view, not a copy.
        return linear(rearrange(out, "b h l d -> b l (h d)"), self.proj, residual=residual, dropout=self.dropout)


class Mlp(nn.Module):
    """Linear -> exact GELU -> linear; adds ``residual`` to its output if given."""

    def __init__(self, hidden_size: int, intermediate_size: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return linear(linear(x, self.fc1, gelu=True), self.fc2, residual=residual, dropout=self.dropout)


class TransformerLayer(nn.Module):
    """Pre-LN block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

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
        self.norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = Mlp(hidden_size, intermediate_size, dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn(self.norm1(x), attn_mask, residual=x)
        return self.mlp(self.norm2(x), residual=x)


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerLayer`, a final LayerNorm and a [CLS] pooler.

    Returns an :class:`~flava_kit.outputs.EncoderOutput`: the states after the final norm, the
    last layer's states before it (what FLAVA fuses), and the pooled [CLS]. With
    ``gradient_checkpointing`` each layer's activations are recomputed in the backward pass
    instead of stored (training only).
    """

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        *,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float = 1e-12,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.gradient_checkpointing = gradient_checkpointing
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, num_heads, intermediate_size, layer_norm_eps, qkv_bias, dropout, attention_dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.pooler = Pooler(hidden_size)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> EncoderOutput:
        """``x``: ``[B, L, H]``; ``padding_mask``: ``[B, L]``, 1 at real tokens, 0 at padding."""
        attn_mask = padding_to_attention_mask(padding_mask)
        for layer in self.layers:
            x = run_layer(layer, self.gradient_checkpointing, x, attn_mask)
        last = self.norm(x)
        return EncoderOutput(last_hidden_state=last, hidden_states_for_fusion=x, pooler_output=self.pooler(last))


class Pooler(nn.Module):
    """``tanh(dense(x[:, 0]))``: the [CLS] state, as BERT and FLAVA pool."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))
