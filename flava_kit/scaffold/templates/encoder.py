"""An image encoder for flava_kit (contract: ``flava_kit.contracts.ImageEncoder``): patches embedded
by a convolution, one pre-norm MLP block per layer, a [CLS] state in front, a learned mask token."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.outputs import EncoderOutput


class ImageEncoder(nn.Module):
    """``pixel_values [B, 3, image_size, image_size]`` -> ``[B, 1 + patches, hidden_size]`` states."""

    def __init__(self, hidden_size: int = 64, image_size: int = 32, patch_size: int = 8, num_layers: int = 2):
        super().__init__()
        self.hidden_size, self.image_size = hidden_size, image_size
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.patches = nn.Conv2d(3, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(hidden_size))  # replaces masked patches (MIM)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, 2 * hidden_size), nn.GELU(), nn.Linear(2 * hidden_size, hidden_size))
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> EncoderOutput:
        """States after the final norm, the last block's before it (what FLAVA's fusion reads), and [CLS]."""
        x = self.patches(pixel_values).flatten(2).transpose(1, 2)
        if bool_masked_pos is not None:
            x = torch.where(bool_masked_pos.view(x.shape[0], -1, 1), self.mask_token.to(x.dtype), x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = x + block(x)
        last = self.norm(x)
        return EncoderOutput(last_hidden_state=last, hidden_states_for_fusion=x, pooler_output=last[:, 0])
