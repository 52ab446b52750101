"""Heads on top of encoders (registry kind ``head``)."""

from flava_kit.heads.classifier import ClassifierHead
from flava_kit.heads.itm import ITMHead
from flava_kit.heads.masked_prediction import MaskedPredictionHead
from flava_kit.heads.vqa import VQAHead

__all__ = ["ClassifierHead", "ITMHead", "MaskedPredictionHead", "VQAHead"]
