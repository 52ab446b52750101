"""Cross-entropy on masked positions: FLAVA's MIM, MLM, MMM-image and MMM-text objectives.

One head and one loss (:class:`MaskedPrediction`); the four objectives differ only in which states
they read and which labels they score, and when a batch applies to them.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from flava_kit.constraints import Epsilon, Size, Vocabulary, Weight
from flava_kit.heads import MaskedPredictionHead
from flava_kit.losses.context import PretrainingContext
from flava_kit.outputs import LossOutput
from flava_kit.registry import register


class MaskedPrediction(nn.Module):
    """A masked-prediction head and the mean cross-entropy at the labelled positions, times ``weight``.

    Positions whose label is ``ignore_index`` are skipped before the head runs (no logits are
    computed for them). With nothing labelled, the loss is exactly zero (HF's is NaN), still
    connected to the graph so a backward pass works. Subclasses say what they read (``select``),
    which part's width and vocabulary they must match (``reads``, ``vocabulary_of``).
    """

    needs: frozenset[str] = frozenset()
    reads = "image_encoder"  # the part whose states the head reads (its width must match)
    vocabulary_of = "codebook"  # the part whose vocabulary the head predicts

    def __init__(
        self,
        hidden_size: Size = 768,
        vocab_size: Vocabulary = 8192,
        layer_norm_eps: Epsilon = 1e-12,
        weight: Weight = 1.0,
        ignore_index: int = -100,
    ):
        super().__init__()
        self.head = MaskedPredictionHead(hidden_size, vocab_size, layer_norm_eps)
        self.hidden_size, self.vocab_size = hidden_size, vocab_size
        self.weight, self.ignore_index = weight, ignore_index

    def select(self, context: PretrainingContext) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(states ``[B, N, H]``, labels ``[B, N]``) this objective scores, or None if the batch does not apply."""
        raise NotImplementedError

    def forward(self, context: PretrainingContext) -> LossOutput | None:
        selected = self.select(context)
        return None if selected is None else self.score(*selected)

    def score(self, states: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """The weighted loss of ``states`` ``[B, N, hidden_size]`` against ``labels`` ``[B, N]``."""
        if states.shape[:2] != labels.shape:
            raise ValueError(f"labels: expected shape {tuple(states.shape[:2])} to match the states, got {tuple(labels.shape)}")
        selected = labels != self.ignore_index
        logits = self.head(states[selected])
        if logits.shape[0] == 0:
            return LossOutput(loss=logits.sum() * 0.0, logits=logits, terms=0)
        return LossOutput(loss=F.cross_entropy(logits, labels[selected]) * self.weight, logits=logits, terms=logits.shape[0])

    def fit(self, parts: dict) -> Iterable[str]:
        """Mismatches with the model's parts: the head's width and vocabulary (see the objective contract)."""
        reads, vocabulary = parts.get(self.reads), parts.get(self.vocabulary_of)
        if reads is not None and reads.hidden_size != self.hidden_size:
            yield f"hidden_size {self.hidden_size} != {self.reads}.hidden_size {reads.hidden_size}"
        if vocabulary is not None and vocabulary.vocab_size != self.vocab_size:
            yield f"vocab_size {self.vocab_size} != {self.vocabulary_of}.vocab_size {vocabulary.vocab_size}"


@register("loss", "mim")
class MaskedImageModeling(MaskedPrediction):
    """MIM: predict the codebook token of each masked patch from the image encoder (image-only batches)."""

    needs = frozenset({"image_targets"})

    def select(self, context):
        if context.has_text or context.image_targets is None:
            return None
        return context.masked.image_embeddings[:, 1:], context.image_targets


@register("loss", "mlm")
class MaskedLanguageModeling(MaskedPrediction):
    """MLM: predict each masked token from the text encoder (text-only batches)."""

    reads = vocabulary_of = "text_encoder"

    def select(self, context):
        if context.has_image or "mlm_labels" not in context.inputs:
            return None
        return context.masked.text_embeddings, context.inputs["mlm_labels"]


@register("loss", "mmm_image")
class MaskedMultimodalImageModeling(MaskedPrediction):
    """MMM-image: predict masked patches' codebook tokens from the fused sequence (true pairs only)."""

    needs = frozenset({"image_targets", "fusion"})
    reads = "fusion"

    def select(self, context):
        if not context.paired or context.image_targets is None:
            return None
        return context.fused("image_patches"), context.kept(context.image_targets)


@register("loss", "mmm_text")
class MaskedMultimodalTextModeling(MaskedPrediction):
    """MMM-text: predict masked tokens from the fused sequence (true pairs only)."""

    needs = frozenset({"fusion"})
    reads, vocabulary_of = "fusion", "text_encoder"

    def select(self, context):
        if not context.paired or "mlm_labels" not in context.inputs:
            return None
        return context.fused("text"), context.kept(context.inputs["mlm_labels"])
