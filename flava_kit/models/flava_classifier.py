"""FLAVA fine-tuned to classify images, texts or image-text pairs."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Probability, Size, Vocabulary
from flava_kit.contracts import Fusion, ImageEncoder, TextEncoder
from flava_kit.heads import ClassifierHead
from flava_kit.models.flava import FlavaModel
from flava_kit.outputs import ClassifierOutput
from flava_kit.registry import register


@register("model", "flava_classifier")
class FlavaClassifier(nn.Module):
    """A classifier head on FLAVA's [CLS] of one ``modality``: ``image``, ``text`` or ``multimodal``.

    The FLAVA part is named as in ``flava_pretraining`` (``flava.*``), so a pretraining run's
    weights load into it (``train.init_from``). Only the encoders the modality needs run.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: Fusion,
        num_classes: Vocabulary = 2,
        modality: Literal["image", "text", "multimodal"] = "multimodal",
        dropout: Probability = 0.0,
        projection_dim: Size = 768,
        logit_scale_init: float = math.log(1 / 0.07),
    ):
        super().__init__()
        self.flava = FlavaModel(image_encoder, text_encoder, fusion, projection_dim, logit_scale_init)
        self.modality, self.num_classes = modality, num_classes
        width = {"image": image_encoder.hidden_size, "text": text_encoder.hidden_size, "multimodal": fusion.hidden_size}[modality]
        self.head = ClassifierHead(width, num_classes, dropout)

    loss_names = ("classification",)
    """The names its ``losses`` can hold."""

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Inputs as FlavaModel's (those the modality does not use are ignored); ``labels`` ``[B]``."""
        needs_image, needs_text = self.modality != "text", self.modality != "image"
        if (needs_image and pixel_values is None) or (needs_text and input_ids is None):
            wanted = " and ".join(n for n, need in (("pixel_values", needs_image), ("input_ids", needs_text)) if need)
            raise ValueError(f"a {self.modality} classifier needs {wanted}")
        out = self.flava(pixel_values if needs_image else None, input_ids if needs_text else None, attention_mask, token_type_ids,
                         skip_multimodal_encoder=self.modality != "multimodal")  # fmt: skip
        pooled = {"image": out.image_embeddings, "text": out.text_embeddings, "multimodal": out.multimodal_embeddings}[self.modality][:, 0]
        logits = self.head(pooled)
        result = ClassifierOutput(logits=logits)
        if labels is not None:
            result.loss = F.cross_entropy(logits, labels)
            result.losses = {"classification": result.loss}
        return result
