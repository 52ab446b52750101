"""Masking generators for images (patches) and text (tokens) (registry kind ``masking``)."""

from flava_kit.masking.image_block import BlockMasking, RandomMasking
from flava_kit.masking.text_mlm import MlmMasking

__all__ = ["BlockMasking", "MlmMasking", "RandomMasking"]
