"""The built-in evaluation tasks (registry kind ``task``); importing this package registers them."""

from flava_kit.evaluation.tasks import classification, knn, linear_probe, retrieval, vqa, zero_shot_classification

__all__ = ["classification", "knn", "linear_probe", "retrieval", "vqa", "zero_shot_classification"]
