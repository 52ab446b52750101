"""``knn``: k-nearest-neighbour classification of frozen image features by cosine similarity."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.tasks.base import TaskInputs, TaskResult
from flava_kit.evaluation.tasks.linear_probe import Rows, Share, train_and_test
from flava_kit.registry import register

TEST_CHUNK, TRAIN_CHUNK = 1024, 8192
"""Test rows scored at a time against training rows read this many at a time: at most
``TEST_CHUNK x (TRAIN_CHUNK + k)`` similarities are held, never test x train."""


def nearest(test: Rows, train: Rows, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosine similarities, training row indices) of each test row's ``k`` most similar training rows, ``[N, k]`` each,
    most similar first; a running top-k is merged chunk by chunk over the training rows."""
    similarities, indices = [], []
    for start in range(0, len(test), TEST_CHUNK):
        queries = F.normalize(test[start : start + TEST_CHUNK], dim=1)
        best = torch.empty(len(queries), 0)
        best_rows = torch.empty(len(queries), 0, dtype=torch.long)
        for first in range(0, len(train), TRAIN_CHUNK):
            keys = F.normalize(train[first : first + TRAIN_CHUNK], dim=1)
            scores = torch.cat([best, queries @ keys.T], dim=1)
            rows = torch.cat([best_rows, torch.arange(first, first + len(keys)).expand(len(queries), -1)], dim=1)
            best, position = scores.topk(min(k, scores.shape[1]), dim=1)
            best_rows = rows.gather(1, position)
        similarities.append(best)
        indices.append(best_rows)
    return torch.cat(similarities), torch.cat(indices)


def vote(neighbour_labels: torch.Tensor, similarities: torch.Tensor, classes: int) -> torch.Tensor:
    """``[N]`` predictions: the class most of the ``[N, k]`` neighbours hold; among classes tied on
    votes, the one whose neighbours' similarities sum highest."""
    votes = torch.zeros(len(neighbour_labels), classes).scatter_add_(1, neighbour_labels, torch.ones_like(similarities))
    summed = torch.zeros(len(neighbour_labels), classes).scatter_add_(1, neighbour_labels, similarities)
    tied = votes == votes.max(dim=1, keepdim=True).values
    return summed.masked_fill(~tied, float("-inf")).argmax(dim=1)


@register("task", "knn")
class KNearestNeighbours:
    """Each image of ``data`` takes the label its ``k`` most cosine-similar training images vote for
    (ties: the tied class with the highest summed similarity). Training images come from ``train``,
    or, without it, a ``train_share`` of ``data`` (seeded by ``seed``). ``representation``:
    ``projected`` (the contrastive space) or ``cls``. Reports ``accuracy``.
    """

    version = 1

    def __init__(self, data: Source, train: Source | None = None, *, k: Annotated[int, Field(ge=1)] = 20, train_share: Share = 0.5,
                 representation: Literal["cls", "projected"] = "projected", seed: int = 0):  # fmt: skip
        self.data, self.train, self.k, self.train_share, self.representation, self.seed = data, train, k, train_share, representation, seed

    def needs(self) -> dict[str, set[str]]:
        """The images of ``data``, and of ``train`` when given."""
        return {"data": {"image"}, "train": {"image"}} if self.train is not None else {"data": {"image"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Classify every test row by its neighbours among the training rows."""
        train_x, train_y, test_x, test_y = train_and_test(inputs, self.train is not None, self.train_share, self.seed, self.representation)
        if self.k > len(train_y):
            raise FlavaKitError(f"knn: k = {self.k} neighbours, but there are only {len(train_y)} training items")
        similarities, neighbours = nearest(test_x, train_x, self.k)
        classes = int(max(train_y.max(), test_y.max())) + 1
        predicted = vote(train_y[neighbours], similarities, classes)
        accuracy = float((predicted == test_y).double().mean())
        return TaskResult({"accuracy": accuracy}, {"k": self.k, "representation": self.representation,
                                                   "train_items": len(train_y), "test_items": len(test_y)})  # fmt: skip

