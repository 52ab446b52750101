"""Typed outputs of components, with HF-compatible field names where HF has one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class FusionLayout:
    """Where each part sits in a fusion's output sequence, so objectives read spans by name.

    ``cls_m`` is the position of [CLS_M]; ``image_cls`` of the image [CLS] (None if the fusion
    drops it); ``image_patches`` and ``text`` are the spans of the image patches and text tokens.
    """

    cls_m: int
    image_cls: int | None
    image_patches: slice
    text: slice


@dataclass
class LossOutput:
    """What an objective returns: its weighted loss (a scalar), the logits it was computed from,
    and optional ``metrics`` (floats or scalar tensors, logged under ``<objective>/<metric>``).

    ``terms``: how many terms the loss is a mean over (masked tokens, masked patches), when that
    varies between batches. Gradient accumulation weights each micro-batch's loss by its share of
    the step's terms, so K micro-batches give the mean over the whole batch; None: every
    micro-batch counts the same (right for a mean over its rows, which are equally many).
    """

    loss: torch.Tensor
    logits: torch.Tensor | tuple[torch.Tensor, ...] | None = None
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)
    terms: torch.Tensor | int | None = None


@dataclass
class PretrainingOutput:
    """What :class:`~flava_kit.models.flava_pretraining.FlavaForPreTraining` returns.

    ``losses`` holds the objectives that ran, by the names the recipe gave them, each already
    weighted; ``loss`` is their sum (None if none ran). ``logits`` and ``metrics`` are keyed the
    same way. HF ``FlavaForPreTrainingOutput``'s names read through: ``out.mim_logits`` is
    ``out.logits["mim"]`` (None when no objective of that name ran).

    Called with ``defer_batch_level=True`` (what exact gradient accumulation does), objectives that
    compare items across the batch are not scored: their per-row tensors are in ``rows`` (by
    objective name) instead, for the caller to score over the whole batch; ``terms`` holds the
    other objectives' :attr:`LossOutput.terms`.
    """

    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)
    unmasked: FlavaOutput | None = None
    masked: FlavaOutput | None = None
    rows: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    terms: dict[str, torch.Tensor | int | None] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_logits") and not name.startswith("_"):
            return self.__dict__.get("logits", {}).get(name[: -len("_logits")])
        raise AttributeError(f"{type(self).__name__} has no attribute '{name}'")


@dataclass
class ClassifierOutput:
    """What :class:`~flava_kit.models.flava_classifier.FlavaClassifier` returns."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
