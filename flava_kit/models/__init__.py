"""Assemblies of components (registry kind ``model``)."""

from flava_kit.models.flava import FlavaModel
from flava_kit.models.flava_pretraining import FlavaForPreTraining

__all__ = ["FlavaForPreTraining", "FlavaModel"]
