"""Codebook-free masked image modelling: regress the pixels of masked patches (SimMIM / MAE style)."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from flava_kit.constraints import Size, Weight
from flava_kit.layers.init import flava_init_
from flava_kit.losses.context import PretrainingContext
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


@register("loss", "pixel_mim")
class PixelMIM(nn.Module):
    """A linear decoder from the image encoder's patch states to the patch's pixels; the mean
    squared error over masked patches, times ``weight``.

    With ``normalize_targets`` each target patch is normalised by its own mean and variance (MAE's
    best setting); without, the raw (processor-normalised) pixels are regressed. Needs no codebook:
    with it instead of ``mim``/``mmm_image``, no codebook runs. Applies to every batch with images
    and a patch mask (image-only and paired), reading the masked pass's image encoder states.
    """

    needs: frozenset[str] = frozenset()

    def __init__(self, hidden_size: Size = 768, patch_size: Size = 16, num_channels: Size = 3, normalize_targets: bool = True,
                 weight: Weight = 1.0):  # fmt: skip
        super().__init__()
        self.decoder = nn.Linear(hidden_size, patch_size * patch_size * num_channels)
        flava_init_(self.decoder)
        self.hidden_size, self.patch_size, self.num_channels = hidden_size, patch_size, num_channels
        self.normalize_targets, self.weight = normalize_targets, weight

    def targets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, N, p*p*C]`` patches in the encoder's row-major order, normalised if asked."""
        p = self.patch_size
        patches = rearrange(pixel_values, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        if self.normalize_targets:
            mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
            patches = (patches - mean) / (var + 1e-6).sqrt()
        return patches

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        mask = context.inputs.get("bool_masked_pos")
        if not context.has_image or mask is None:
            return None
        mask = mask.reshape(mask.shape[0], -1).bool()
        states = context.masked.image_embeddings[:, 1:]  # after the image [CLS]
        predicted = self.decoder(states[mask])
        target = self.targets(context.inputs["pixel_values"].float())[mask]
        if predicted.shape[0] == 0:
            return LossOutput(loss=predicted.sum() * 0.0, logits=predicted, terms=0)
        # terms: masked patches (each is a mean over the same number of pixels)
        return LossOutput(loss=F.mse_loss(predicted.float(), target) * self.weight, logits=predicted, terms=predicted.shape[0])

    def fit(self, parts: dict) -> Iterable[str]:
        """The decoder must read the image encoder's width and emit its patches' pixels."""
        encoder = parts["image_encoder"]
        if encoder.hidden_size != self.hidden_size:
            yield f"hidden_size {self.hidden_size} != image_encoder.hidden_size {encoder.hidden_size}"
        patch = encoder.image_size // encoder.grid_size[0]
        if patch != self.patch_size:
            yield f"patch_size {self.patch_size} != the image encoder's patch side {patch} (image_size / grid)"
