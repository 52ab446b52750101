"""A third-party evaluation task, written against flava_kit's ``Task`` contract."""

from __future__ import annotations

from flava_kit.contracts import Source
from flava_kit.evaluation.tasks.base import TaskResult


class FeatureNorm:
    """The mean L2 norm of the image features' rows in ``representation`` (``cls``, ``projected``...)."""

    version = 1

    def __init__(self, data: Source, *, representation: str = "cls"):
        self.data, self.representation = data, representation

    def needs(self):
        """The images of ``data``."""
        return {"data": {"image"}}

    def run(self, inputs):
        """Average the row norms, a chunk of rows at a time (the features may be memory-mapped)."""
        features = inputs.features("data", "image").tensor(self.representation)
        total = sum(float(features[i : i + 4096].float().norm(dim=1).double().sum()) for i in range(0, len(features), 4096))
        mean = total / len(features) if len(features) else float("nan")
        return TaskResult({"mean_norm": mean}, {"representation": self.representation, "images": len(features)})
