"""The FLAVA assembly: image and text encoders, width adapters, a fusion, contrastive projections."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Size
from flava_kit.contracts import Fusion, ImageEncoder, TextEncoder
from flava_kit.layers.init import flava_init_
from flava_kit.outputs import FlavaOutput
from flava_kit.registry import register


@register("model", "flava")
class FlavaModel(nn.Module):
    """FLAVA (HF ``FlavaModel``) from injected parts: any image encoder, text encoder and fusion.

    The assembly owns the layers whose input width is an encoder's: the projections of each
    encoder's pre-final-norm states to the fusion width (so any encoder fits any fusion), and the
    contrastive projections of the [CLS] states to ``projection_dim``.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: Fusion,
        projection_dim: Size = 768,
        logit_scale_init: float = math.log(1 / 0.07),
    ):
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.fusion = fusion
        self.image_projection = nn.Linear(image_encoder.hidden_size, projection_dim)
        self.text_projection = nn.Linear(text_encoder.hidden_size, projection_dim)
        self.image_to_fusion = nn.Linear(image_encoder.hidden_size, fusion.hidden_size)
        self.text_to_fusion = nn.Linear(text_encoder.hidden_size, fusion.hidden_size)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        # Only its own layers: injected parts keep their initialisation (or pretrained weights).
        flava_init_(self.image_projection, self.text_projection, self.image_to_fusion, self.text_to_fusion)


    def example_inputs(self, batch_size: int = 2, text_length: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
        """A seeded random batch that fits this model: images at the image encoder's native size,
        token ids in the text encoder's vocabulary, the second text half padded."""
        generator = torch.Generator().manual_seed(seed)
        size = self.image_encoder.image_size
        attention_mask = torch.ones(batch_size, text_length, dtype=torch.long)
        attention_mask[1:, text_length // 2 :] = 0
        return {
            "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
            "input_ids": torch.randint(1, self.text_encoder.vocab_size, (batch_size, text_length), generator=generator) * attention_mask,
            "attention_mask": attention_mask,
        }

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        skip_multimodal_encoder: bool = False,
    ) -> FlavaOutput:
        """Encode whatever is given: an image, a text, or both (then also fuse them).

        Arguments take HF ``FlavaModel``'s names and shapes: ``pixel_values`` ``[B, 3, H, W]``,
        ``input_ids``/``attention_mask``/``token_type_ids`` ``[B, L]``, ``bool_masked_pos`` ``[B, N]``.
        """
        if pixel_values is None and input_ids is None:
            raise ValueError("FlavaModel needs pixel_values, input_ids, or both; got neither")
        out = FlavaOutput()
        if pixel_values is not None:
            image = self.image_encoder(pixel_values, bool_masked_pos=bool_masked_pos)
            out.image_output, out.image_embeddings = image, image.last_hidden_state
            out.image_features = F.normalize(self.image_projection(image.last_hidden_state[:, 0]), dim=-1)
        elif bool_masked_pos is not None:
            raise ValueError("bool_masked_pos was given without pixel_values")
        if input_ids is not None:
            text = self.text_encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            out.text_output, out.text_embeddings = text, text.last_hidden_state
            out.text_features = F.normalize(self.text_projection(text.last_hidden_state[:, 0]), dim=-1)
        if out.image_output is not None and out.text_output is not None and not skip_multimodal_encoder:
            if out.image_embeddings.shape[0] != out.text_embeddings.shape[0]:
                raise ValueError(
                    f"pixel_values and input_ids have different batch sizes "
                    f"({out.image_embeddings.shape[0]} and {out.text_embeddings.shape[0]})"
                )
            fused = self.fusion(
                self.image_to_fusion(out.image_output.hidden_states_for_fusion),
                self.text_to_fusion(out.text_output.hidden_states_for_fusion),
                attention_mask,
            )
            out.multimodal_output, out.multimodal_embeddings = fused, fused.last_hidden_state
        return out
