"""The DALL-E dVAE encoder FLAVA uses as its masked-image-modelling target (HF ``FlavaImageCodebook``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from flava_kit.layers.init import flava_init_
from flava_kit.constraints import Size, Vocabulary
from flava_kit.registry import register
from flava_kit.tensors import check_size, check_tensor


class _ResidualBlock(nn.Module):
    """``id_path(x) + post_gain * res_path(x)``; the res path is 3 ReLU-conv3x3 and a ReLU-conv1x1."""

    def __init__(self, in_size: int, out_size: int, num_layers: int):
        super().__init__()
        hidden = out_size // 4
        self.post_gain = 1 / num_layers**2
        self.id_path = nn.Conv2d(in_size, out_size, kernel_size=1) if in_size != out_size else nn.Identity()
        self.res_path = nn.Module()
        self.res_path.path = nn.Sequential(OrderedDict([  # HF's names, so weights load by prefix alone
            ("relu_1", nn.ReLU()), ("conv_1", nn.Conv2d(in_size, hidden, 3, padding=1)),
            ("relu_2", nn.ReLU()), ("conv_2", nn.Conv2d(hidden, hidden, 3, padding=1)),
            ("relu_3", nn.ReLU()), ("conv_3", nn.Conv2d(hidden, hidden, 3, padding=1)),
            ("relu_4", nn.ReLU()), ("conv_4", nn.Conv2d(hidden, out_size, 1)),
        ]))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.id_path(x) + self.post_gain * self.res_path.path(x)


@register("codebook", "dalle")
class DalleCodebook(nn.Module):
    """DALL-E's dVAE encoder: ``input_size`` pixels -> a grid (1/8 of it) of tokens from ``vocab_size``.

    Frozen by default (FLAVA never trains it); ``tokens`` runs without autograd. Expects pixels
    mapped as HF's ``FlavaImageProcessor`` maps codebook pixels (``map_pixels``).
    """

    def __init__(
        self,
        hidden_size: Size = 256,
        num_blocks_per_group: Size = 2,
        vocab_size: Vocabulary = 8192,
        input_channels: Size = 3,
        input_size: Size = 112,
        frozen: bool = True,
    ):
        super().__init__()
        if input_size % 8:
            raise ValueError(f"input_size {input_size} is not a multiple of 8 (the encoder pools three times)")
        self.vocab_size = vocab_size
        self.input_size = input_size
        self.input_channels = input_channels
        self.grid_size = (input_size // 8, input_size // 8)
        num_layers = 4 * num_blocks_per_group
        widths = [hidden_size, hidden_size, 2 * hidden_size, 4 * hidden_size, 8 * hidden_size]
        blocks = OrderedDict([("input", nn.Conv2d(input_channels, hidden_size, 7, padding=3))])
        for g in range(4):
            group = OrderedDict(
                (f"block_{i + 1}", _ResidualBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1], num_layers))
                for i in range(num_blocks_per_group)
            )
            if g < 3:
                group["pool"] = nn.MaxPool2d(kernel_size=2)
            blocks[f"group_{g + 1}"] = nn.Module()
            blocks[f"group_{g + 1}"].group = nn.Sequential(group)
        blocks["output"] = nn.Sequential(OrderedDict([("relu", nn.ReLU()), ("conv", nn.Conv2d(8 * hidden_size, vocab_size, 1))]))
        self.blocks = nn.ModuleDict(blocks)
        flava_init_(self)  # as HF's FlavaImageCodebook from scratch (real use loads trained weights)
        self.to(memory_format=torch.channels_last)  # oneDNN's convolutions run ~10% faster on NHWC
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, vocab_size, rows, cols]`` token logits."""
        check_tensor("codebook_pixel_values", pixels, f"[B, {self.input_channels}, {self.input_size}, {self.input_size}]", 4, floating=True)
        check_size("codebook_pixel_values", pixels, 1, self.input_channels, f"[B, {self.input_channels}, H, W]")
        x = pixels.contiguous(memory_format=torch.channels_last)
        for name, block in self.blocks.items():
            x = block(x) if name in ("input", "output") else block.group(x)
        return x

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, rows * cols]`` token ids (argmax of the logits), computed without autograd."""
        with torch.no_grad():
            return self.logits(pixels).argmax(dim=1).flatten(1)

    def train(self, mode: bool = True) -> DalleCodebook:
        """A frozen codebook stays in eval mode."""
        return super().train(mode and not self.frozen)
