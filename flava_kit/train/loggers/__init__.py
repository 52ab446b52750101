"""Metric loggers (registry kind ``logger``): ``csv`` and ``tensorboard`` built in, the experiment
trackers ``mlflow`` and ``wandb`` built in behind their extras (imported when such a logger is
built), others by plug-in."""

from flava_kit.train.loggers.csv_logger import CsvLogger
from flava_kit.train.loggers.mlflow_logger import MlflowLogger
from flava_kit.train.loggers.tensorboard import TensorBoardLogger
from flava_kit.train.loggers.wandb_logger import WandbLogger

__all__ = ["CsvLogger", "MlflowLogger", "TensorBoardLogger", "WandbLogger"]
