"""FLAVA's multimodal encoder: [CLS_M] + image states + text states through a transformer."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from flava_kit.constraints import multiple_of, Count, Epsilon, Probability, Size
from flava_kit.layers import TransformerEncoder
from flava_kit.layers.init import flava_init_
from flava_kit.outputs import EncoderOutput, FusionLayout
from flava_kit.registry import register
from flava_kit.tensors import check_tensor


@register("fusion", "flava_multimodal")
class FlavaMultimodalFusion(nn.Module):
    """FLAVA's concat fusion (HF ``FlavaMultimodalModel``): self-attention over both sequences.

    ``token_init_std`` > 0 draws [CLS_M] from a truncated normal instead of HF's zeros (for
    training from scratch; see :func:`~flava_kit.layers.init.flava_init_`).
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """``hidden_size`` must split evenly over ``num_heads`` (see :data:`flava_kit.contracts.RecipeChecks`)."""
        yield from multiple_of(node, path, "hidden_size", "num_heads", "each attention head gets hidden_size / num_heads")

    def __init__(
        self,
        hidden_size: Size = 768,
        num_layers: Count = 6,
        num_heads: Size = 12,
        intermediate_size: Size = 3072,
        layer_norm_eps: Epsilon = 1e-12,
        qkv_bias: bool = True,
        dropout: Probability = 0.0,
        attention_dropout: Probability = 0.0,
        gradient_checkpointing: bool = False,
        token_init_std: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.encoder = TransformerEncoder(
            num_layers, hidden_size, num_heads=num_heads, intermediate_size=intermediate_size, layer_norm_eps=layer_norm_eps,
            qkv_bias=qkv_bias, dropout=dropout, attention_dropout=attention_dropout, gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip
        flava_init_(self, zeros=(self.cls_token,), token_std=token_init_std)

    def layout(self, image_length: int, text_length: int) -> FusionLayout:
        """Where [CLS_M], the image ([CLS] + patches) and the text sit in the output: ``[CLS_M, image..., text...]``."""
        return FusionLayout(cls_m=0, image_cls=1, image_patches=slice(2, 1 + image_length), text=slice(1 + image_length, 1 + image_length + text_length))

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them."""
        self.encoder.gradient_checkpointing = enabled

    def forward(
        self, image_states: torch.Tensor, text_states: torch.Tensor, text_padding_mask: torch.Tensor | None = None
    ) -> EncoderOutput:
        """``image_states`` ``[B, Li, H]``, ``text_states`` ``[B, Lt, H]``, ``text_padding_mask`` ``[B, Lt]``."""
        check_tensor("image_states", image_states, "[B, Li, H]", 3, floating=True)
        check_tensor("text_states", text_states, "[B, Lt, H]", 3, floating=True)
        batch, image_len, _ = image_states.shape
        x = torch.cat([self.cls_token.expand(batch, -1, -1), image_states, text_states], dim=1)
        padding = None
        if text_padding_mask is not None:
            image_part = text_padding_mask.new_ones(batch, 1 + image_len)
            padding = torch.cat([image_part, text_padding_mask], dim=1)
        return self.encoder(x, padding)
