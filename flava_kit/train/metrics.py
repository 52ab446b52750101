"""What a run reports besides its losses: the columns of its logs, the system metrics of a window of
steps (throughput, data wait, memory), and the PNG of its loss curves."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from flava_kit.train.device import peak_memory_mib


def loss_columns(model: torch.nn.Module) -> list[str]:
    """``losses.csv``'s first columns: the step, the learning rate, the total loss and each named
    loss the model can report (a pretraining model's objectives by their recipe names)."""
    return ["step", "lr", "loss", *getattr(model, "loss_names", [])]


SYSTEM_METRICS = ["samples_per_s", "data_wait_s", "compute_s", "data_wait_share", "peak_memory_mib", "skipped_items"]


class MetricsWindow:
    """Time and samples since the last system-metrics report."""

    def __init__(self):
        self.data_wait, self.compute, self.samples = 0.0, 0.0, 0

    def report(self, device: torch.device, skipped: int) -> dict[str, float]:
        """Throughput, data-wait and compute time (and the wait's share), peak memory, items skipped so far."""
        total = self.data_wait + self.compute
        return {
            "skipped_items": skipped,
            "samples_per_s": self.samples / total if total else 0.0,
            "data_wait_s": self.data_wait,
            "compute_s": self.compute,
            "data_wait_share": self.data_wait / total if total else 0.0,
            "peak_memory_mib": peak_memory_mib(device),
        }


def plot_losses(csv_path: Path, png_path: Path, names: list[str]) -> None:
    """A PNG with one curve per loss (``names``: columns of ``losses.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for column in names:
        points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
        if points:
            axis.plot(*zip(*points), label=column, linewidth=1.2 if column == "loss" else 0.8)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
