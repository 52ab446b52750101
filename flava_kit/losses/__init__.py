"""Pretraining objectives (registry kind ``loss``): modules called with a
:class:`~flava_kit.losses.context.PretrainingContext`, returning a weighted LossOutput or None."""

from flava_kit.losses.context import PretrainingContext
from flava_kit.losses.contrastive import GlobalContrastiveLoss
from flava_kit.losses.itm import ITMLoss
from flava_kit.losses.masked_prediction import (
    MaskedImageModeling,
    MaskedLanguageModeling,
    MaskedMultimodalImageModeling,
    MaskedMultimodalTextModeling,
    MaskedPrediction,
)
from flava_kit.losses.pixel_mim import PixelMIM
from flava_kit.losses.sigmoid_contrastive import SigmoidContrastiveLoss

__all__ = [
    "GlobalContrastiveLoss", "ITMLoss", "MaskedImageModeling", "MaskedLanguageModeling", "MaskedMultimodalImageModeling",
    "MaskedMultimodalTextModeling", "MaskedPrediction", "PixelMIM", "PretrainingContext", "SigmoidContrastiveLoss",
]
