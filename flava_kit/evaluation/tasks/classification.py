"""``classification``: a fine-tuned classifier's own predictions (or a regressor's scores) on a
labelled source, scored as downstream benchmarks report them (GLUE, Hateful Memes, image
classification)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.glue import GLUE, GlueTask, MetricName, chosen_metrics, class_metrics, score_metrics
from flava_kit.evaluation.report import MAX_CONFUSION_CLASSES, save_confusion_png
from flava_kit.evaluation.tasks.base import TaskInputs, TaskResult
from flava_kit.registry import register


@register("task", "classification")
class Classification:
    """A fine-tuned ``flava_classifier`` on ``data``: each item (an image, a text, a text pair or an
    image with its text, whatever the classifier's modality reads) is predicted as the class of its
    highest logit and compared with its ``label``.

    ``metrics`` names what to report, in that order (see :mod:`flava_kit.evaluation.glue`):
    ``accuracy``, ``f1`` (class 1's, of a two-class task: MRPC's and QQP's), ``macro_f1``, ``mcc``
    (Matthews correlation: CoLA's) and ``roc_auc`` (of class 1's probability: Hateful Memes'; more
    classes: one-vs-rest, macro) by scikit-learn; unset, all but ``f1``. A regressor
    (``flava_classifier`` with ``num_classes: 1``) is scored by its one output against the items'
    scores: ``pearson`` and ``spearman`` by scipy.stats. ``glue`` (``cola``, ``sst2``, ``mrpc``,
    ``qqp``, ``stsb``, ``mnli``, ``qnli``, ``rte``, ``wnli``) reports what GLUE reports for that
    task instead, and checks that the model predicts its number of classes. A metric undefined on
    this data (AUC when one class is present, a correlation of constant scores) is left out and
    ``details.notes`` says why. Details hold the confusion matrix (a picture for up to 50 classes)
    named by ``class_names`` (a list, or a file with one per line; unset: the source's own, else the
    class indices), or a regressor's scores against the targets (a scatter plot). A FLAVA model
    that was not fine-tuned has no classifier: see the error.
    """

    version = 2

    def __init__(self, data: Source, *, class_names: list[str] | str | None = None, metrics: list[MetricName] | None = None,
                 glue: GlueTask | None = None):  # fmt: skip
        if metrics is not None and not metrics:
            raise ValueError("metrics is empty: name what to report, or leave it out for the defaults")
        self.data, self.class_names, self.metrics, self.glue = data, class_names, metrics, glue

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """``metrics`` and ``glue`` both choose the metrics: one of them."""
        if node.get("metrics") and node.get("glue"):
            yield (path + ("metrics",), f"metrics and glue both choose what to report (glue: {node['glue']} reports "
                   f"{', '.join(GLUE[node['glue']].metrics)})", "remove one of them")  # fmt: skip

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
        logits = np.asarray(features.tensor("logits").float())
        classes = logits.shape[1]
        chosen = chosen_metrics(self.metrics, self.glue, classes)
        if classes == 1:
            return self._regression(logits[:, 0], features.scores("data").numpy(), chosen)
        labels = features.labelled("data").numpy()
        if int(labels.max()) >= classes:
            raise FlavaKitError(f"data: an item has label {int(labels.max())}, but the classifier predicts {classes} classes")
        names = self._names(inputs, classes)
        metrics, notes = class_metrics(logits, labels, chosen)
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (labels, logits.argmax(1)), 1)
        details = {"items": len(labels), "classes": classes, "class_names": names, "confusion": confusion.tolist(), "notes": notes,
                   "items_per_class": np.bincount(labels, minlength=classes).tolist()}  # fmt: skip
        pictures = {}
        if classes <= MAX_CONFUSION_CLASSES:  # larger matrices are unreadable
            pictures["confusion.png"] = lambda path: save_confusion_png(confusion.tolist(), names, path)
        return TaskResult(metrics, details, pictures)

    @staticmethod
    def _regression(predictions: np.ndarray, targets: np.ndarray, chosen: Sequence[str]) -> TaskResult:
        """A regressor's correlations, with the range of its scores and of the targets (a regressor
        that learnt one value shows as a range of width 0) and their scatter plot."""
        metrics, notes = score_metrics(predictions, targets, chosen)
        spread = {side: {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}
                  for side, values in (("predictions", predictions), ("targets", targets))}  # fmt: skip
        details = {"items": len(targets), "regression": True, "notes": notes, **spread}
        return TaskResult(metrics, details, {"scores.png": lambda path: _save_scores_png(targets, predictions, path)})

    def _names(self, inputs: TaskInputs, classes: int) -> list[str]:
        """The class names given or the source's, else the class indices; as many as the classifier has classes."""
        if self.class_names is None and not getattr(inputs.sources.get("data"), "class_names", None):
            return [str(c) for c in range(classes)]
        names: Sequence[str] = inputs.class_names("data", self.class_names)
        if len(names) != classes:
            raise FlavaKitError(f"the classifier predicts {classes} classes, but there are {len(names)} class names")
        return list(names)


def _save_scores_png(targets: np.ndarray, predictions: np.ndarray, path: str) -> None:
    """A regressor's scores against the targets, with the diagonal a perfect regressor lies on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(targets, predictions, s=6, alpha=0.5)
    low, high = float(min(targets.min(), predictions.min())), float(max(targets.max(), predictions.max()))
    axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
    axis.set_xlabel("target")
    axis.set_ylabel("predicted")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
