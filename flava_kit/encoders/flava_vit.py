"""FLAVA's image encoder: a ViT with [CLS], a learned mask token and a final LayerNorm."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from flava_kit.constraints import multiple_of, Count, Epsilon, Probability, Size
from flava_kit.layers import TransformerEncoder
from flava_kit.layers.init import flava_init_
from flava_kit.outputs import EncoderOutput
from flava_kit.registry import register
from flava_kit.tensors import check_size, check_tensor


@register("encoder", "flava_vit")
class FlavaViT(nn.Module):
    """FLAVA's ViT image encoder (HF ``FlavaImageModel``), with a mask token for MIM.

    Images of another size than ``image_size`` (a multiple of ``patch_size``) get bicubically
    interpolated position embeddings, as HF's ``interpolate_pos_encoding``. ``token_init_std`` > 0
    draws [CLS], the mask token and the position embeddings from a truncated normal instead of
    HF's zeros (for training from scratch; see :func:`~flava_kit.layers.init.flava_init_`).
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """Heads split ``hidden_size`` evenly; patches tile ``image_size`` (see :data:`flava_kit.contracts.RecipeChecks`)."""
        yield from multiple_of(node, path, "hidden_size", "num_heads", "each attention head gets hidden_size / num_heads")
        yield from multiple_of(node, path, "image_size", "patch_size", "patches must tile the image")

    def __init__(
        self,
        hidden_size: Size = 768,
        num_layers: Count = 12,
        num_heads: Size = 12,
        intermediate_size: Size = 3072,
        image_size: Size = 224,
        patch_size: Size = 16,
        num_channels: Size = 3,
        layer_norm_eps: Epsilon = 1e-12,
        qkv_bias: bool = True,
        dropout: Probability = 0.0,
        attention_dropout: Probability = 0.0,
        gradient_checkpointing: bool = False,
        token_init_std: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.patch_embed = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, hidden_size))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.encoder = TransformerEncoder(
            num_layers, hidden_size, num_heads=num_heads, intermediate_size=intermediate_size, layer_norm_eps=layer_norm_eps,
            qkv_bias=qkv_bias, dropout=dropout, attention_dropout=attention_dropout, gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip
        flava_init_(self, zeros=(self.cls_token, self.mask_token, self.pos_embed), token_std=token_init_std)  # as HF's FlavaImageEmbeddings

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings for a ``grid`` of patches, interpolated when it is not the native one."""
        if grid == self.grid_size:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, *self.grid_size, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)], dim=1)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them."""
        self.encoder.gradient_checkpointing = enabled

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> EncoderOutput:
        """``pixel_values``: ``[B, C, H, W]``; ``bool_masked_pos``: ``[B, N]`` or ``[B, rows, cols]``,
        True where a patch is replaced by the mask token."""
        check_tensor("pixel_values", pixel_values, "[B, C, H, W]", 4, floating=True)
        check_size("pixel_values", pixel_values, 1, self.num_channels, f"[B, {self.num_channels}, H, W]")
        height, width = pixel_values.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"pixel_values: height and width must be multiples of {self.patch_size}, got {height}x{width}")
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        batch, num_patches, _ = x.shape
        if bool_masked_pos is not None:
            check_tensor("bool_masked_pos", bool_masked_pos, f"[B, {num_patches}]", (2, 3), floating=False)
            mask = bool_masked_pos.reshape(bool_masked_pos.shape[0], -1)
            if mask.shape != (batch, num_patches):
                raise ValueError(f"bool_masked_pos: expected shape [{batch}, {num_patches}], got {tuple(bool_masked_pos.shape)}")
            # Arithmetic blend, not torch.where, so masked pixels' gradients are exactly zero as in HF.
            weight = mask.unsqueeze(-1).to(x.dtype)
            x = x * (1.0 - weight) + self.mask_token * weight
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = self.dropout(x + self.position_embeddings((height // self.patch_size, width // self.patch_size)))
        return self.encoder(x)
