"""The TensorBoard logger: the real ``torch.utils.tensorboard.SummaryWriter`` (extra ``tensorboard``)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.errors import FlavaKitError
from flava_kit.registry import register


@register("logger", "tensorboard")
class TensorBoardLogger:
    """Scalars under ``<group>/<name>`` (``train/loss``, ``train/itm``, ``system/samples_per_s``) in
    ``RUN/tensorboard`` (or ``log_dir``); watch with ``tensorboard --logdir RUN``.

    On resume, events after the restored step are purged (SummaryWriter's ``purge_step``), so a
    crashed and resumed run shows each step once. Needs the ``tensorboard`` package:
    ``pip install 'flava_kit[tensorboard]'``.
    """

    def __init__(self, log_dir: str | None = None, flush_secs: int = 30):
        self.log_dir, self.flush_secs = log_dir, flush_secs
        self.writer = None

    def start(self, run_dir: Path, step: int, columns: dict[str, list[str]]) -> None:
        """Open the event file; resuming after ``step`` purges later events."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise FlavaKitError(
                "train.loggers: the tensorboard logger needs the tensorboard package: pip install 'flava_kit[tensorboard]'"
            ) from exc
        directory = Path(self.log_dir) if self.log_dir else Path(run_dir) / "tensorboard"
        self.writer = SummaryWriter(str(directory), flush_secs=self.flush_secs, purge_step=step + 1 if step > 0 else None)

    def log(self, step: int, metrics: dict[str, float], group: str = "train") -> None:
        """One scalar per metric at ``step``."""
        for name, value in metrics.items():
            self.writer.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
