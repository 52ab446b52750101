"""``vqa``: a VQA model's answers to questions about images, scored by VQA accuracy."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.metrics import answer_coverage, vqa_accuracy
from flava_kit.evaluation.tasks.base import TaskInputs, TaskResult
from flava_kit.registry import register

TOP_PREDICTED = 10
"""How many of the most often predicted answers the details list (a model that always answers "yes" shows here)."""


def describe(source: Any) -> str:
    """A source as an error names it: its type, and the file or folder it reads when it has one."""
    where = next((getattr(source, name) for name in ("path", "root", "urls") if getattr(source, name, None)), None)
    return type(source).__name__ + (f" {where}" if where is not None else "")


@register("task", "vqa")
class VisualQuestionAnswering:
    """A ``flava_vqa`` model on ``data``'s questions (each item: an image, its question as ``text``,
    and ``answers``, every annotator's answer): the prediction is the answer of the highest logit in
    the model's answer vocabulary, worth ``min(#annotators who gave it / 3, 1)``
    (:func:`~flava_kit.data.answers.answer_credit`, as the model is trained towards).

    Reports ``vqa_accuracy``, the mean credit over questions. Details: the vocabulary's reach
    (``answerable``: the share of questions whose most-given answer is in the vocabulary;
    ``ceiling``: the accuracy of always picking the best vocabulary answer) and the most often
    predicted answers. Answers are compared as given (normalise them in the data).
    """

    version = 1

    def __init__(self, data: Source):
        self.data = data

    def needs(self) -> dict[str, set[str]]:
        """``data``'s answer logits (stored under ``image``, though the model reads image and question)."""
        return {"data": {"image"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Predict an answer per question and score it."""
        if inputs.model_kind != "vqa":
            raise FlavaKitError(f"vqa scores a VQA model (flava_vqa, with an answer vocabulary), not a {inputs.model_kind} model")
        vocabulary = list(inputs.answers or [])
        if not vocabulary:
            raise FlavaKitError("the VQA model has no answer vocabulary (model.answers): give it the answers its head was trained on")
        features = inputs.features("data", "image")
        given = features.answers or [None] * len(features)
        missing = [key for key, answers in zip(features.keys, given) if not answers]
        if missing or not len(features):
            raise FlavaKitError(f"data ({describe(inputs.sources.get('data'))}): {len(missing)} of {len(features)} items have no answers "
                                f"(first: {missing[0] if missing else None}); vqa needs every annotator's answers on each item, "
                                "from the source's answers field")  # fmt: skip
        logits = np.asarray(features.tensor("logits"))
        if logits.shape[1] != len(vocabulary):
            raise FlavaKitError(f"the model scores {logits.shape[1]} answers, but its answer vocabulary has {len(vocabulary)}")
        predicted = [vocabulary[i] for i in logits.argmax(1).tolist()]
        details = {"questions": len(predicted), "vocabulary": len(vocabulary), **answer_coverage(vocabulary, given),
                   "most_predicted": [{"answer": a, "questions": n} for a, n in Counter(predicted).most_common(TOP_PREDICTED)]}  # fmt: skip
        return TaskResult({"vqa_accuracy": vqa_accuracy(predicted, given)}, details)
