"""Assemblies of components (registry kind ``model``)."""

from flava_kit.models.flava import FlavaModel
from flava_kit.models.flava_classifier import FlavaClassifier
from flava_kit.models.flava_pretraining import FlavaForPreTraining
from flava_kit.models.flava_vqa import FlavaForVQA

__all__ = ["FlavaClassifier", "FlavaForPreTraining", "FlavaForVQA", "FlavaModel"]
