"""Metric loggers (registry kind ``logger``): ``csv`` and ``tensorboard`` built in, others by plug-in."""

from flava_kit.train.loggers.csv_logger import CsvLogger
from flava_kit.train.loggers.tensorboard import TensorBoardLogger

__all__ = ["CsvLogger", "TensorBoardLogger"]
