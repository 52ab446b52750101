"""Typed outputs of components, with HF-compatible field names where HF has one."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EncoderOutput:
    """What every encoder and fusion returns.

    - ``last_hidden_state``: ``[B, L, H]`` after the final norm; position 0 is [CLS] ([CLS_M] for fusion).
    - ``hidden_states_for_fusion``: ``[B, L, H]``, the last layer *before* the final norm.
    - ``pooler_output``: ``[B, H]``, the pooled [CLS] state.
    """

    last_hidden_state: torch.Tensor
    hidden_states_for_fusion: torch.Tensor
    pooler_output: torch.Tensor | None = None


@dataclass
class FlavaOutput:
    """What :class:`~flava_kit.models.flava.FlavaModel` returns; fields are None for absent modalities.

    ``image_embeddings``/``text_embeddings``/``multimodal_embeddings`` mean what they mean in HF's
    ``FlavaModelOutput``. ``image_features``/``text_features`` are the L2-*normalised* projections
    of the [CLS] states, the vectors FLAVA's global contrastive loss compares.
    """

    image_embeddings: torch.Tensor | None = None
    text_embeddings: torch.Tensor | None = None
    multimodal_embeddings: torch.Tensor | None = None
    image_features: torch.Tensor | None = None
    text_features: torch.Tensor | None = None
    image_output: EncoderOutput | None = None
    text_output: EncoderOutput | None = None
    multimodal_output: EncoderOutput | None = None


@dataclass
class LossOutput:
    """What an objective returns: its weighted loss (a scalar) and the logits it was computed from."""

    loss: torch.Tensor
    logits: torch.Tensor | tuple[torch.Tensor, ...] | None = None


@dataclass
class PretrainingOutput:
    """What :class:`~flava_kit.models.flava_pretraining.FlavaForPreTraining` returns.

    ``losses`` holds the objectives that ran (``mim``, ``mlm``, ``itm``, ``global_contrastive``,
    ``mmm_image``, ``mmm_text``), each already weighted; ``loss`` is their sum (None if none ran).
    Logit fields carry HF ``FlavaForPreTrainingOutput``'s names.
    """

    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    mim_logits: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    itm_logits: torch.Tensor | None = None
    mmm_image_logits: torch.Tensor | None = None
    mmm_text_logits: torch.Tensor | None = None
    contrastive_logits_per_image: torch.Tensor | None = None
    contrastive_logits_per_text: torch.Tensor | None = None
    unmasked: FlavaOutput | None = None
    masked: FlavaOutput | None = None


@dataclass
class ClassifierOutput:
    """What :class:`~flava_kit.models.flava_classifier.FlavaClassifier` returns."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
