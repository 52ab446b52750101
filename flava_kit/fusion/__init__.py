"""Multimodal fusion modules (registry kind ``fusion``)."""

from flava_kit.fusion.cross_attention import CrossAttentionFusion
from flava_kit.fusion.flava_multimodal import FlavaMultimodalFusion

__all__ = ["CrossAttentionFusion", "FlavaMultimodalFusion"]
