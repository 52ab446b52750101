"""The built-in evaluation tasks (registry kind ``task``); importing this package registers them."""

from flava_kit.evaluation.tasks import knn, linear_probe, retrieval, zero_shot_classification

__all__ = ["knn", "linear_probe", "retrieval", "zero_shot_classification"]
