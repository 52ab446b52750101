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
    """An answer vocabulary given as a list, or a file with one answer per line; duplicates are an error."""
    from pathlib import Path

    if isinstance(given, str):
        path = Path(given)
        if not path.is_file():
            raise FlavaKitError(f"answers: {path} is not a file (one answer per line)")
        given = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    vocabulary = list(given)
    if not vocabulary:
        raise FlavaKitError("answers: the answer vocabulary is empty")
    duplicated = sorted({a for a in vocabulary if vocabulary.count(a) > 1})
    if duplicated:
        raise FlavaKitError(f"answers: {duplicated[:5]} appear more than once in the answer vocabulary")
    return vocabulary
