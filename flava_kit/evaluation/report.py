"""A zero-shot (or classifier) report as the field writes it: top-k accuracy, mean per-class recall,
a per-class table and a confusion matrix (a PNG for up to 50 classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from flava_kit.evaluation.metrics import classification_report

MAX_CONFUSION_CLASSES = 50


def class_report(scores: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict:
    """``acc@1``, ``acc@5``, ``mean_per_class_recall``, ``per_class`` (name, images, recall) and
    ``confusion`` (rows: true class, columns: predicted)."""
    labels = torch.as_tensor(labels)
    predicted = scores.argmax(1)
    confusion = torch.zeros(len(class_names), len(class_names), dtype=torch.long)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    per_class = [{"class": name, "images": int(confusion[c].sum()),
                  "recall": float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None}
                 for c, name in enumerate(class_names)]  # fmt: skip
    return {**classification_report(scores, labels), "per_class": per_class, "confusion": confusion.tolist()}


def save_confusion_png(confusion: list[list[int]], class_names: Sequence[str], path: str | Path) -> Path | None:
    """Draw the confusion matrix; None (nothing drawn) above ``MAX_CONFUSION_CLASSES`` classes."""
    if len(class_names) > MAX_CONFUSION_CLASSES:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.35 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(confusion, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axis.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
