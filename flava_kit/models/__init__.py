"""Assemblies of components (registry kind ``model``)."""

from flava_kit.models.flava import FlavaModel

__all__ = ["FlavaModel"]
