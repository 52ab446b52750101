"""The metrics a fine-tuned classifier or regressor reports, chosen by name or by GLUE task, and
computed by scikit-learn and scipy (never by hand).

GLUE (Wang et al. 2019), as the FLAVA paper reports it, scores each task its own way: CoLA by
Matthews correlation, MRPC and QQP by the F1 of their positive class and accuracy, STS-B (a
regression on a 0-5 similarity) by Pearson and Spearman correlation, the rest by accuracy. MNLI is
reported on its matched and on its mismatched validation set: two datasets, so two tasks of an eval
recipe (two entries of one table).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from flava_kit.errors import FlavaKitError

MetricName = Literal["accuracy", "f1", "macro_f1", "mcc", "roc_auc", "pearson", "spearman"]
"""A metric a ``classification`` task can report: see :data:`CLASS_METRICS` and :data:`SCORE_METRICS`."""

CLASS_METRICS = ("accuracy", "f1", "macro_f1", "mcc", "roc_auc")
"""Of a classifier's predictions (the class of its highest logit), by scikit-learn: ``accuracy``,
``f1`` (of class 1, the positive class, in a two-class task: MRPC's and QQP's), ``macro_f1`` (the
mean over classes), ``mcc`` (Matthews correlation: CoLA's) and ``roc_auc`` (of class 1's
probability, or one-vs-rest macro-averaged over more classes: Hateful Memes')."""

SCORE_METRICS = ("pearson", "spearman")
"""Of a regressor's scores, by scipy.stats: ``pearson`` and ``spearman`` correlation with the
targets (STS-B's)."""

DEFAULT_CLASS_METRICS = ("accuracy", "macro_f1", "mcc", "roc_auc")
"""What a classifier reports when the task names no metrics."""

GlueTask = Literal["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


@dataclass(frozen=True)
class GlueProtocol:
    """How GLUE scores one task: its ``metrics`` in the order its leaderboard lists them, and the
    ``classes`` its model predicts (1: a regression)."""

    metrics: tuple[str, ...]
    classes: int


GLUE: dict[str, GlueProtocol] = {
    "cola": GlueProtocol(("mcc",), 2),
    "sst2": GlueProtocol(("accuracy",), 2),
    "mrpc": GlueProtocol(("f1", "accuracy"), 2),
    "qqp": GlueProtocol(("f1", "accuracy"), 2),
    "stsb": GlueProtocol(("pearson", "spearman"), 1),
    "mnli": GlueProtocol(("accuracy",), 3),
    "qnli": GlueProtocol(("accuracy",), 2),
    "rte": GlueProtocol(("accuracy",), 2),
    "wnli": GlueProtocol(("accuracy",), 2),
}


def chosen_metrics(metrics: Sequence[str] | None, glue: str | None, classes: int) -> tuple[str, ...]:
    """The metrics to report for a model with ``classes`` outputs (1: a regressor): ``metrics`` as
    given, else GLUE's for the ``glue`` task, else the defaults (:data:`DEFAULT_CLASS_METRICS`, or
    :data:`SCORE_METRICS` for a regressor). A metric of the other kind of model, a GLUE task whose
    model predicts another number of classes, or ``f1`` of a task that is not two-class is an error."""
    regressor = classes == 1
    if glue is not None:
        protocol = GLUE[glue]
        if protocol.classes != classes:
            want = "a regressor (num_classes: 1)" if protocol.classes == 1 else f"a {protocol.classes}-class classifier"
            have = "a regressor" if regressor else f"a {classes}-class classifier"
            raise FlavaKitError(f"glue: {glue} is scored on {want}, but the model is {have}")
        metrics = protocol.metrics
    elif not metrics:
        metrics = SCORE_METRICS if regressor else DEFAULT_CLASS_METRICS
    wrong = [m for m in metrics if m not in (SCORE_METRICS if regressor else CLASS_METRICS)]
    if wrong:
        what = ("a regressor (num_classes: 1) is scored by its correlations: " + ", ".join(SCORE_METRICS) if regressor
                else f"a {classes}-class classifier is scored by its predicted classes: " + ", ".join(CLASS_METRICS))  # fmt: skip
        raise FlavaKitError(f"metrics {', '.join(wrong)}: {what}")
    if "f1" in metrics and classes != 2:
        raise FlavaKitError(f"metric f1 is the F1 of class 1 of a two-class task (MRPC's, QQP's), but the classifier predicts {classes} "
                            "classes: use macro_f1")  # fmt: skip
    return tuple(dict.fromkeys(metrics))  # each once, in the order given


def class_metrics(logits: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, notes): each of ``names`` (:data:`CLASS_METRICS`) of ``[N, C]`` ``logits`` against
    ``[N]`` class indices, by scikit-learn; one undefined here (AUC with one class present) is left
    out and ``notes`` says why (see :func:`~flava_kit.evaluation.metrics.classification_metrics`)."""
    from sklearn.metrics import f1_score

    from flava_kit.evaluation.metrics import classification_metrics

    computed, notes = classification_metrics(logits, labels)
    if "f1" in names:
        computed["f1"] = float(f1_score(labels, np.asarray(logits).argmax(1), pos_label=1, average="binary", zero_division=0))
    return {name: computed[name] for name in names if name in computed}, {name: why for name, why in notes.items() if name in names}


def score_metrics(predictions: np.ndarray, targets: np.ndarray, names: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, notes): each of ``names`` (:data:`SCORE_METRICS`) of ``[N]`` predicted scores against
    ``[N]`` targets, by scipy.stats; a correlation that is undefined (fewer than two items, or a
    constant side: a regressor that learnt one value) is left out and ``notes`` says why."""
    from scipy import stats

    functions = {"pearson": stats.pearsonr, "spearman": stats.spearmanr}
    metrics, notes = {}, {}
    predictions, targets = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    constant = [side for side, values in (("predictions", predictions), ("targets", targets)) if len(values) and np.all(values == values[0])]
    for name in names:
        why = None
        with warnings.catch_warnings(record=True) as caught:  # scipy warns about a constant input and returns NaN
            warnings.simplefilter("always")
            try:
                value = float(functions[name](predictions, targets).statistic)
            except ValueError as exc:  # fewer than two items
                value, why = float("nan"), str(exc)
        if np.isnan(value):
            if constant:
                why = f"the {' and the '.join(constant)} are constant"
            notes[name] = f"left out: {why or (caught[-1].message if caught else 'undefined on these scores')}"
        else:
            metrics[name] = value
    return metrics, notes
