"""``classification``: a fine-tuned classifier's own predictions on a labelled source, scored as
downstream benchmarks report them (GLUE, Hateful Memes, image classification)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.metrics import classification_metrics
from flava_kit.evaluation.report import MAX_CONFUSION_CLASSES, save_confusion_png
from flava_kit.evaluation.tasks.base import TaskInputs, TaskResult
from flava_kit.registry import register


@register("task", "classification")
class Classification:
    """A fine-tuned ``flava_classifier`` on ``data``: each item (an image, a text, a text pair or an
    image with its text, whatever the classifier's modality reads) is predicted as the class of its
    highest logit and compared with its ``label``.

    Reports ``accuracy``, ``macro_f1``, ``mcc`` (Matthews correlation, CoLA's metric) and ``roc_auc``
    (binary: of class 1's probability, Hateful Memes' metric; more classes: one-vs-rest, macro), all
    by scikit-learn; a metric undefined on this data (AUC when one class is present) is left out and
    ``details.notes`` says why. Details hold the confusion matrix (a picture for up to 50 classes)
    named by ``class_names`` (a list, or a file with one per line; unset: the source's own, else the
    class indices). A FLAVA model that was not fine-tuned has no classifier: see the error.
    """

    version = 1

    def __init__(self, data: Source, *, class_names: list[str] | str | None = None):
        self.data, self.class_names = data, class_names

    def needs(self) -> dict[str, set[str]]:
        """``data``'s logits (stored under ``image`` whatever the classifier reads)."""
        return {"data": {"image"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Score the classifier's predictions against the labels."""
        if inputs.model_kind != "classifier":
            instead = ("the vqa task scores a VQA model" if inputs.model_kind == "vqa" else "use zero_shot_classification (class "
                       "prompts) or linear_probe (a probe on frozen features) for a model that was not fine-tuned")  # fmt: skip
            raise FlavaKitError(f"classification scores a fine-tuned classifier (flava_classifier), not a {inputs.model_kind} model; "
                                f"{instead}")  # fmt: skip
        features = inputs.features("data", "image")
        labels = features.labelled("data").numpy()
        logits = np.asarray(features.tensor("logits").float())
        classes = logits.shape[1]
        if int(labels.max()) >= classes:
            raise FlavaKitError(f"data: an item has label {int(labels.max())}, but the classifier predicts {classes} classes")
        names = self._names(inputs, classes)
        metrics, notes = classification_metrics(logits, labels)
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (labels, logits.argmax(1)), 1)
        details = {"items": len(labels), "classes": classes, "class_names": names, "confusion": confusion.tolist(), "notes": notes,
                   "items_per_class": np.bincount(labels, minlength=classes).tolist()}  # fmt: skip
        pictures = {}
        if classes <= MAX_CONFUSION_CLASSES:  # larger matrices are unreadable
            pictures["confusion.png"] = lambda path: save_confusion_png(confusion.tolist(), names, path)
        return TaskResult(metrics, details, pictures)

    def _names(self, inputs: TaskInputs, classes: int) -> list[str]:
        """The class names given or the source's, else the class indices; as many as the classifier has classes."""
        if self.class_names is None and not getattr(inputs.sources.get("data"), "class_names", None):
            return [str(c) for c in range(classes)]
        names: Sequence[str] = inputs.class_names("data", self.class_names)
        if len(names) != classes:
            raise FlavaKitError(f"the classifier predicts {classes} classes, but there are {len(names)} class names")
        return list(names)
