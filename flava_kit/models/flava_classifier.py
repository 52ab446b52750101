"""FLAVA fine-tuned to classify images, texts or image-text pairs, or to score them (a regression)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Probability, Size, Vocabulary
from flava_kit.contracts import Fusion, ImageEncoder, TextEncoder
from flava_kit.errors import ShapeError
from flava_kit.heads import ClassifierHead
from flava_kit.models.flava import FlavaModel
from flava_kit.outputs import ClassifierOutput
from flava_kit.registry import register


@register("model", "flava_classifier")
class FlavaClassifier(nn.Module):
    """A classifier head on FLAVA's [CLS] of one ``modality``: ``image``, ``text`` or ``multimodal``.

    ``num_classes: 1`` makes it a regressor (as HF's ``num_labels=1``): one output, a score, trained
    by mean squared error towards float labels (GLUE STS-B's 0-5 similarity), logged as the
    ``regression`` loss; otherwise it is trained by cross-entropy towards class indices, logged as
    ``classification``. The FLAVA part is named as in ``flava_pretraining`` (``flava.*``), so a
    pretraining run's weights load into it (``train.init_from``). Only the encoders the modality
    needs run.
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

    @property
    def is_regressor(self) -> bool:
        """Whether it scores (one output, mean squared error) rather than classifies."""
        return self.num_classes == 1

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The names its ``losses`` can hold."""
        return ("regression",) if self.is_regressor else ("classification",)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Inputs as FlavaModel's (those the modality does not use are ignored); ``labels`` ``[B]``:
        class indices, or for a regressor scores (any dtype; compared in float32 with ``logits[:, 0]``)."""
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
            result.loss = self._loss(logits, labels)
            result.losses = {self.loss_names[0]: result.loss}
        return result

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """MSE of a regressor's one output against the scores; cross-entropy against class indices."""
        if self.is_regressor:
            return F.mse_loss(logits[:, 0].float(), labels.float())
        if labels.is_floating_point():
            if not bool((labels == labels.round()).all()):
                raise ShapeError(f"labels hold scores ({float(labels[labels != labels.round()][0]):g}, a fraction), but this is a "
                                 f"{self.num_classes}-class classifier: class indices train it; a score trains a regressor "
                                 "(model.num_classes: 1)")  # fmt: skip
            labels = labels.long()
        return F.cross_entropy(logits, labels)
