"""Evaluating a (pretrained) FLAVA: features, zero-shot classification, retrieval, linear probe."""

from flava_kit.evaluation.features import (
    TEMPLATES,
    class_embeddings,
    image_features,
    retrieval_recall,
    text_features,
    zero_shot_accuracy,
    zero_shot_scores,
)
from flava_kit.evaluation.metrics import classification_report, linear_probe, retrieval_recall_at, torch_linear_probe

__all__ = [
    "TEMPLATES", "class_embeddings", "classification_report", "image_features", "linear_probe", "retrieval_recall", "retrieval_recall_at",
    "text_features", "torch_linear_probe", "zero_shot_accuracy", "zero_shot_scores",
]
