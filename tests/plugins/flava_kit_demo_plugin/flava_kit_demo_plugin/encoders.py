"""An image encoder that honours flava_kit's ImageEncoder contract without any transformer."""

import torch
from torch import nn

from flava_kit.outputs import EncoderOutput


class PatchMlpEncoder(nn.Module):
    """Patches -> per-patch MLP, with [CLS] (mean of patches) and a learned mask token."""

    def __init__(self, hidden_size: int = 32, image_size: int = 32, patch_size: int = 8, num_channels: int = 3):
        super().__init__()
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.embed = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU())
        self.mask_token = nn.Parameter(torch.zeros(hidden_size))
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, pixel_values, bool_masked_pos=None):
        x = self.embed(pixel_values).flatten(2).transpose(1, 2)
        if bool_masked_pos is not None:
            x = torch.where(bool_masked_pos.reshape(x.shape[0], -1, 1), self.mask_token, x)
        x = self.mlp(x)
        states = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        last = self.norm(states)
        return EncoderOutput(last_hidden_state=last, hidden_states_for_fusion=states, pooler_output=last[:, 0])
