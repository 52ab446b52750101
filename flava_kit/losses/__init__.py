"""Training objectives (registry kind ``loss``): modules with a ``weight`` returning a LossOutput."""

from flava_kit.losses.contrastive import GlobalContrastiveLoss
from flava_kit.losses.itm import ITMLoss
from flava_kit.losses.masked_prediction import MaskedPredictionLoss

__all__ = ["GlobalContrastiveLoss", "ITMLoss", "MaskedPredictionLoss"]
