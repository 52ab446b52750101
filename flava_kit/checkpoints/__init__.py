"""Checkpoint import and export: HF transformers FLAVA directories, TorchMultimodal state dicts."""

from flava_kit.checkpoints.hf import from_pretrained, save_pretrained
from flava_kit.checkpoints.torchmultimodal import from_torchmultimodal, load_torchmultimodal_state_dict

__all__ = ["from_pretrained", "from_torchmultimodal", "load_torchmultimodal_state_dict", "save_pretrained"]
