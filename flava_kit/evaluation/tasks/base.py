"""What a task reads and returns: :class:`Features` of a dataset, :class:`TaskInputs`, :class:`TaskResult`.

The contract itself (``needs``, ``run``, ``version``) is :class:`flava_kit.contracts.Task`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from flava_kit.errors import FlavaKitError

MODALITIES = ("image", "text")


@dataclass
class Features:
    """One model's features of one dataset in one modality, row ``i`` for the dataset's item ``i``
    (in the source's own order).

    ``representations`` maps a name to an ``[N, D]`` float32 array, usually memory-mapped from the
    feature cache (so a task reads rows, not the whole file): ``projected`` (the L2-normalised
    contrastive projection, what zero-shot and retrieval compare), ``cls`` (the encoder's [CLS]
    state before any projection, what the FLAVA paper's probes read) and, for a fine-tuned
    classifier or VQA model, ``logits``. ``labels`` is ``[N]`` int64, -1 where an item has none, or
    float64 when some item's label is a score (a regression target; -1 still where none).
    ``answers``: each item's VQA answers (every annotator's; None where an item has none), or None
    when no item has any.
    """

    representations: dict[str, np.ndarray]
    labels: np.ndarray
    keys: list[str]
    skipped: int = 0
    answers: list[list[str] | None] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def tensor(self, representation: str) -> torch.Tensor:
        """One representation as a tensor sharing the array's memory (no copy of a memory map)."""
        if representation not in self.representations:
            raise FlavaKitError(f"no '{representation}' features; there are {', '.join(self.representations)}")
        return torch.from_numpy(np.asarray(self.representations[representation]))

    def labelled(self, where: str) -> torch.Tensor:
        """The labels as an int64 tensor of class indices, or an error (naming ``where``) when some
        item has none or has a score (a fraction) instead."""
        labels = torch.from_numpy(np.asarray(self.labels))
        if labels.is_floating_point():
            fractional = (labels != labels.round()).nonzero().flatten()
            if len(fractional):
                row = int(fractional[0])
                raise FlavaKitError(f"{where}: item {self.keys[row]} has the score {float(labels[row]):g} as its label, but a class task "
                                    "needs class indices (a score is a regression target: a regressor, num_classes: 1, reads it)")  # fmt: skip
            labels = labels.long()
        if len(labels) == 0 or bool((labels < 0).any()):
            missing = int((labels < 0).sum())
            raise FlavaKitError(f"{where}: {missing} of {len(labels)} items have no label (a class task needs a label on every item)")
        return labels

    def scores(self, where: str) -> torch.Tensor:
        """The labels as float64 regression targets, or an error (naming ``where``) when some item has
        none (-1: no score is a negative integer, as the sources read them)."""
        labels = torch.from_numpy(np.asarray(self.labels)).double()
        missing = (labels < 0) & (labels == labels.round())
        if len(labels) == 0 or bool(missing.any()):
            raise FlavaKitError(f"{where}: {int(missing.sum())} of {len(labels)} items have no label (a regression task needs a score "
                                "on every item)")  # fmt: skip
        return labels


ScorePairs = Callable[[str, Sequence[int], Sequence[int]], Any]
"""``score_pairs(role, image_rows, text_rows) -> [P]`` scores: how well image row ``image_rows[p]``
matches text row ``text_rows[p]`` of the role's data (the model's image-text matching head; higher
is a better match); rows are those of the role's :class:`Features`."""


@dataclass
class TaskInputs:
    """What :meth:`Task.run` gets: features by (role, modality), the built sources by role, and
    ``encode_texts(texts) -> [N, D]`` normalised text features of the model under evaluation
    (class prompts). ``model_kind`` is ``"flava"``, ``"classifier"`` (a fine-tuned classifier, whose
    image features are its ``logits``) or ``"vqa"`` (a VQA model, whose image features are its
    ``logits`` over ``answers``, its answer vocabulary). ``score_pairs`` (a :data:`ScorePairs`) runs
    the model on chosen image-text pairs, for tasks that re-rank; None where it is not offered."""

    features_of: Callable[[str, str], Features]
    sources: dict[str, Any]
    encode_texts: Callable[[Sequence[str]], torch.Tensor]
    model_kind: str = "flava"
    answers: Sequence[str] | None = None
    score_pairs: ScorePairs | None = None

    def features(self, role: str, modality: str = "image") -> Features:
        """The features of the dataset in ``role`` (one of the task's source parameters)."""
        return self.features_of(role, modality)

    def source(self, role: str) -> Any:
        """The built source in ``role``."""
        return self.sources[role]

    def class_names(self, role: str = "data", given: Sequence[str] | str | None = None) -> list[str]:
        """Class names: ``given`` (a list, or a file with one name per line), else the source's own
        ``class_names`` (a labelled folder's subfolders, the synthetic classes), else an error."""
        if given:
            from flava_kit.data.sources.fields import read_class_names

            return read_class_names(given, f"the task's {role}")
        names = getattr(self.sources[role], "class_names", None)
        if not names:
            raise FlavaKitError(f"{role}: this source has no class names: set the task's class_names (a list, or a file with one per line)")
        return list(names)


@dataclass
class TaskResult:
    """A task's answer: ``metrics`` (name -> float; higher is better unless named in
    ``lower_is_better``), JSON-able ``details`` (per-class tables, confusion matrices, chosen
    hyper-parameters) and ``pictures`` (file name -> a function that draws into that path)."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    pictures: dict[str, Callable[[Path], Any]] = field(default_factory=dict)
    lower_is_better: set[str] = field(default_factory=set)


def split_rows(count: int, train_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of a seeded permutation of ``range(count)``: a split of one dataset
    when a task is given no separate training set."""
    if not 0 < train_share < 1:
        raise FlavaKitError(f"train_share {train_share}: expected a share between 0 and 1")
    order = np.random.default_rng(seed).permutation(count)
    cut = int(round(count * train_share))
    if cut == 0 or cut == count:
        raise FlavaKitError(f"{count} items cannot be split {train_share:.2f} / {1 - train_share:.2f} into two non-empty parts")
    return np.sort(order[:cut]), np.sort(order[cut:])
