"""An evaluation task for flava_kit (contract: ``flava_kit.contracts.Task``): how far apart the
classes' mean image features are, relative to the spread within each class."""

from __future__ import annotations

import torch

from flava_kit.contracts import Source
from flava_kit.evaluation.tasks.base import TaskResult


class Task:
    """``separation``: the mean distance between class centroids of the ``projected`` image features
    over the mean distance of images to their own class centroid (higher: classes apart)."""

    version = 1

    def __init__(self, data: Source):
        self.data = data

    def needs(self) -> dict[str, set[str]]:
        """The images of ``data``."""
        return {"data": {"image"}}

    def run(self, inputs) -> TaskResult:
        """Centroids per label, then the two mean distances."""
        features = inputs.features("data", "image")
        x, labels = features.tensor("projected").float(), features.labelled("data")
        classes = labels.unique()
        centroids = torch.stack([x[labels == c].mean(0) for c in classes])
        within = torch.cat([(x[labels == c] - centroids[i]).norm(dim=1) for i, c in enumerate(classes)]).mean()
        between = torch.pdist(centroids).mean() if len(classes) > 1 else torch.tensor(0.0)
        return TaskResult({"separation": float(between / within.clamp_min(1e-12))}, {"classes": len(classes), "images": len(labels)})
