"""Image and text encoders (registry kind ``encoder``)."""

from flava_kit.encoders.flava_text import FlavaTextEncoder
from flava_kit.encoders.flava_vit import FlavaViT

__all__ = ["FlavaTextEncoder", "FlavaViT"]
