"""VQA answers: the answer vocabulary, and how much credit an answer gets.

A question comes with every annotator's answer (VQAv2: ten). An answer that ``n`` of them gave is
worth ``min(n / 3, 1)``: the soft score the model is trained towards (one per vocabulary entry)
and the VQA accuracy of predicting it, so training and evaluation share one definition.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import torch

from flava_kit.errors import FlavaKitError

HUMANS_FOR_FULL_CREDIT = 3
"""Annotators who must agree for an answer to count as fully right (the VQA metric's 3)."""


def answer_credit(answer: str, answers: Sequence[str]) -> float:
    """``min(#annotators who gave answer / 3, 1)``: the VQA accuracy of predicting ``answer``."""
    return min(sum(given == answer for given in answers) / HUMANS_FOR_FULL_CREDIT, 1.0)


def answer_scores(answers: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> torch.Tensor:
    """``[B, len(vocabulary)]`` soft targets: row ``b`` holds each vocabulary answer's credit for
    item ``b``'s annotator answers (answers outside the vocabulary score nowhere)."""
    index = {answer: i for i, answer in enumerate(vocabulary)}
    scores = torch.zeros(len(answers), len(vocabulary))
    for row, given in enumerate(answers):
        for answer, count in Counter(given).items():
            if answer in index:
                scores[row, index[answer]] = min(count / HUMANS_FOR_FULL_CREDIT, 1.0)
    return scores


def top_answers(answer_lists: Iterable[Sequence[str]], top_k: int) -> list[str]:
    """The ``top_k`` answers given most often over all questions (ties: the first seen first), as the
    VQA literature builds its answer vocabulary from the training annotations."""
    counts: Counter[str] = Counter()
    for answers in answer_lists:
        counts.update(answers)
    if not counts:
        raise FlavaKitError("no answers in the training data to build an answer vocabulary from (items need an 'answers' field)")
    return [answer for answer, _ in counts.most_common(top_k)]


def read_vocabulary(given: Sequence[str] | str) -> list[str]:
    """An answer vocabulary given as a list, or a file with one answer per line; none, or an answer
    listed twice, is a ``DataError`` naming the file, whose ``parameter`` (``answers``) lets a
    recipe's error point at ``model.answers``."""
    from flava_kit.data.sources.base import DataError
    from flava_kit.data.sources.fields import read_class_names

    try:
        return read_class_names(given, given if isinstance(given, str) else "flava_vqa", setting="answers")
    except DataError as exc:
        exc.parameter = "answers"
        raise
