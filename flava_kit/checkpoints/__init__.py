"""Checkpoint import and export: HF transformers FLAVA directories."""

from flava_kit.checkpoints.hf import from_pretrained, save_pretrained

__all__ = ["from_pretrained", "save_pretrained"]
