"""Image and text encoders (registry kind ``encoder``)."""

from flava_kit.encoders.flava_text import FlavaTextEncoder
from flava_kit.encoders.flava_vit import FlavaViT
from flava_kit.encoders.hf_text import HFTextEncoder
from flava_kit.encoders.timm_vit import TimmViT

__all__ = ["FlavaTextEncoder", "FlavaViT", "HFTextEncoder", "TimmViT"]
