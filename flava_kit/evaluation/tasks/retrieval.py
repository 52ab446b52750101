"""``retrieval``: image-to-text and text-to-image recall@k over a set of image-text pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from flava_kit.constraints import Steps
from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.metrics import retrieval_recall_at
from flava_kit.evaluation.tasks.base import TaskInputs, TaskResult
from flava_kit.registry import register

DIRECTIONS = ("image_to_text", "text_to_image")


def save_recall_png(recalls: dict[str, float], ks: Sequence[int], path: str | Path) -> Path:
    """Draw recall against k for both directions."""
    import matplotlib

    matplotlib.use("Agg")  # no display on an evaluation machine
    import matplotlib.pyplot as plt

    ks = sorted(set(ks))
    figure, axis = plt.subplots(figsize=(5, 4))
    for direction in DIRECTIONS:
        axis.plot(ks, [recalls[f"{direction}_R@{k}"] for k in ks], marker="o", label=direction.replace("_", " "))
    axis.set_xlabel("k")
    axis.set_ylabel("recall@k")
    axis.set_ylim(0, 1.02)
    axis.set_xticks(ks)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


@register("task", "retrieval")
class Retrieval:
    """Retrieval over ``data``'s image-text pairs (item ``i``'s image and text are a true pair):
    ``image_to_text_R@k`` and ``text_to_image_R@k`` for each k in ``ks``, from the ``projected``
    features, with similarities computed ``chunk`` queries at a time (never N x N at once).
    """

    version = 1

    def __init__(self, data: Source, *, ks: tuple[Steps, ...] = (1, 5, 10), chunk: Steps = 4096):
        if not ks:
            raise ValueError("ks: give at least one k")
        self.data, self.ks, self.chunk = data, tuple(ks), chunk

    def needs(self) -> dict[str, set[str]]:
        """The images and the texts of ``data``."""
        return {"data": {"image", "text"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Rank every text for every image and back; report recall@k."""
        images, texts = inputs.features("data", "image"), inputs.features("data", "text")
        if images.keys != texts.keys:  # row i must be one item in both, or every pair is misaligned
            row = next((i for i, (a, b) in enumerate(zip(images.keys, texts.keys)) if a != b), min(len(images), len(texts)))
            raise FlavaKitError(f"data: image and text features are not the same items ({len(images)} images, {len(texts)} texts; "
                                f"they first differ at row {row}); retrieval needs every item to have both")  # fmt: skip
        recalls = retrieval_recall_at(images.tensor("projected").float(), texts.tensor("projected").float(), self.ks, self.chunk)
        return TaskResult(recalls, {"pairs": len(images)}, {"recall_at_k.png": lambda path: save_recall_png(recalls, self.ks, path)})
