"""FLAVA fine-tuned for visual question answering: soft scores over an answer vocabulary."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Probability, Size, Vocabulary
from flava_kit.contracts import Fusion, ImageEncoder, TextEncoder
from flava_kit.data.answers import read_vocabulary
from flava_kit.heads.vqa import VQAHead
from flava_kit.models.flava import FlavaModel
from flava_kit.outputs import ClassifierOutput
from flava_kit.registry import register


def soft_score_bce(logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every answer's sigmoid against its soft score, summed over answers and
    averaged over questions (the VQA objective of FLAVA, ViLT and MMF)."""
    return F.binary_cross_entropy_with_logits(logits, scores.to(logits.dtype), reduction="sum") / logits.shape[0]


@register("model", "flava_vqa")
class FlavaForVQA(nn.Module):
    """A VQA head (:class:`~flava_kit.heads.vqa.VQAHead`) on the fused [CLS_M] of an image and its
    question, trained with :func:`soft_score_bce` towards each answer's credit ``min(n / 3, 1)``.

    ``answers`` is the answer vocabulary (a list, or a file with one answer per line), kept in the
    model as HF keeps ``id2label``, so a saved model names its predictions. Left unset,
    ``flava-kit pretrain`` fills it with the ``max_answers`` answers given most often in the
    training data (and writes them to the run's ``answers.txt``); until then the head has
    ``max_answers`` unnamed outputs. The FLAVA part is named as in ``flava_pretraining``
    (``flava.*``), so a pretraining run's weights load into it (``train.init_from``).
    """

    loss_names = ("vqa",)
    """The names its ``losses`` can hold."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: Fusion,
        answers: list[str] | str | None = None,
        max_answers: Vocabulary = 3129,
        dropout: Probability = 0.0,
        projection_dim: Size = 768,
        logit_scale_init: float = math.log(1 / 0.07),
    ):
        super().__init__()
        self.answers = read_vocabulary(answers) if answers is not None else None
        self.flava = FlavaModel(image_encoder, text_encoder, fusion, projection_dim, logit_scale_init)
        self.head = VQAHead(fusion.hidden_size, len(self.answers) if self.answers else max_answers, dropout)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        answer_scores: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """An image and its question (as FlavaModel's inputs) -> ``logits`` ``[B, answers]``; with
        ``answer_scores`` ``[B, answers]`` (soft targets in [0, 1]), the loss too."""
        if pixel_values is None or input_ids is None:
            raise ValueError("VQA needs pixel_values (the image) and input_ids (the question)")
        out = self.flava(pixel_values, input_ids, attention_mask, token_type_ids)
        logits = self.head(out.multimodal_embeddings[:, 0])
        result = ClassifierOutput(logits=logits)
        if answer_scores is not None:
            if answer_scores.shape != logits.shape:
                raise ValueError(f"answer_scores: expected shape {list(logits.shape)} (one score per answer), got {list(answer_scores.shape)}")
            result.loss = soft_score_bce(logits, answer_scores)
            result.losses = {"vqa": result.loss}
        return result
