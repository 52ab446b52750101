"""A parameter-free MIM target: each patch's mean colour, quantised to a small palette (iGPT-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flava_kit.constraints import Probability, Size
from flava_kit.registry import register
from flava_kit.tensors import check_tensor


@register("codebook", "color_palette")
class ColorPaletteCodebook:
    """Tokens are patch mean colours on a ``levels``^3 palette (``levels`` per channel).

    An alternative MIM target in the spirit of iGPT's colour clusters: no weights to load, no
    GFLOPs spent, and a vocabulary of ``levels**3`` (512 by default). Pixel values are clipped to
    ``[low, high]`` (0.1..0.9 for HF's mapped codebook pixels) before quantising.
    """

    def __init__(self, levels: Size = 8, input_size: Size = 112, grid: Size = 14, low: Probability = 0.1, high: Probability = 0.9):
        if input_size % grid:
            raise ValueError(f"input_size {input_size} is not a multiple of grid {grid}")
        if not (levels >= 2 and high > low):
            raise ValueError(f"need levels >= 2 and high > low, got levels={levels}, low={low}, high={high}")
        self.levels, self.low, self.high = levels, low, high
        self.vocab_size = levels**3
        self.input_size = input_size
        self.grid_size = (grid, grid)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, input_size, input_size]`` -> ``[B, grid * grid]`` palette indices."""
        check_tensor("codebook_pixel_values", pixels, f"[B, 3, {self.input_size}, {self.input_size}]", 4, floating=True)
        means = F.adaptive_avg_pool2d(pixels, self.grid_size)  # [B, 3, g, g]
        scaled = (means.clamp(self.low, self.high) - self.low) / (self.high - self.low)
        level = (scaled * self.levels).long().clamp(max=self.levels - 1)
        red, green, blue = level.unbind(1)
        return ((red * self.levels + green) * self.levels + blue).flatten(1)
