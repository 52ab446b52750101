"""Pretraining: recipe sections, the training loop, checkpoints."""

from flava_kit.train.config import DataConfig, TrainConfig
from flava_kit.train.trainer import Trainer

__all__ = ["DataConfig", "TrainConfig", "Trainer"]
