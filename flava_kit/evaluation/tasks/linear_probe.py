"""``linear_probe``: logistic regression on frozen image features, as the FLAVA paper probes."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from flava_kit.contracts import Source
from flava_kit.evaluation.metrics import linear_probe, torch_linear_probe
from flava_kit.evaluation.tasks.base import Features, TaskInputs, TaskResult, split_rows
from flava_kit.registry import register

Share = Annotated[float, Field(gt=0.0, lt=1.0)]
"""A share of a dataset's items strictly between 0 and 1 (both parts of a split non-empty)."""

Cost = Annotated[float, Field(gt=0.0)]
"""An inverse regularisation strength ``C``."""

Megabytes = Annotated[int, Field(gt=0)]
"""A memory budget in MiB."""


class Rows:
    """Rows ``rows`` of an ``[N, D]`` (memory-mapped) array, read only when indexed: what
    :func:`torch_linear_probe` indexes in place of a tensor, so a split is never copied whole."""

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None):
        self.array, self.rows = array, np.arange(len(array)) if rows is None else np.asarray(rows)
        self.shape = (len(self.rows), array.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        picked = self.rows[index.numpy() if isinstance(index, torch.Tensor) else index]
        return torch.from_numpy(np.asarray(self.array[picked], dtype=np.float32))  # a fancy index copies: a writable chunk

    def numpy(self) -> np.ndarray:
        """Every row, read into memory."""
        return np.asarray(self.array[self.rows], dtype=np.float32)


def labelled_rows(features: Features, representation: str, role: str, rows: np.ndarray | None = None) -> tuple[Rows, torch.Tensor]:
    """(lazy feature rows, their labels) of ``features``; an error when some item has no label."""
    if representation not in features.representations:
        features.tensor(representation)  # raises, naming the representations there are
    labels = features.labelled(role)
    return Rows(features.representations[representation], rows), labels if rows is None else labels[torch.from_numpy(rows)]


def train_and_test(inputs: TaskInputs, has_train: bool, train_share: float, seed: int, representation: str) -> tuple:
    """(train rows, train labels, test rows, test labels): ``train``'s images against ``data``'s, or,
    without a ``train`` source, a seeded ``train_share`` split of ``data``."""
    test = inputs.features("data", "image")
    if not has_train:
        train_rows, test_rows = split_rows(len(test), train_share, seed)
        return (*labelled_rows(test, representation, "data", train_rows), *labelled_rows(test, representation, "data", test_rows))
    return (*labelled_rows(inputs.features("train", "image"), representation, "train"), *labelled_rows(test, representation, "data"))


@register("task", "linear_probe")
class LinearProbe:
    """A linear classifier on frozen image features (``representation``: ``cls``, the encoder's
    [CLS] state the FLAVA paper probes, or ``projected``), trained on ``train`` and tested on
    ``data``; without ``train``, ``data`` is split (``train_share`` of it, seeded by ``seed``).

    ``method``: ``lbfgs`` (scikit-learn's logistic regression, ``C`` chosen from ``costs`` on a
    ``validation`` share of the training rows; the paper's probe), ``torch`` (AdamW in mini-batches
    over memory-mapped features, the weight decay chosen likewise) or ``auto``: L-BFGS when the
    training features, as the float64 copy scikit-learn makes, fit in ``lbfgs_memory_mb``.
    Reports ``accuracy``; details name the chosen hyper-parameter, the method and the item counts.
    """

    version = 1

    def __init__(self, data: Source, train: Source | None = None, *, train_share: Share = 0.5, representation: Literal["cls", "projected"] = "cls",
                 costs: tuple[Cost, ...] = (0.01, 0.1, 1.0, 10.0, 100.0), validation: Share = 0.2,
                 method: Literal["auto", "lbfgs", "torch"] = "auto", lbfgs_memory_mb: Megabytes = 2048, seed: int = 0):  # fmt: skip
        if not costs:
            raise ValueError("costs: give at least one value of C to try")
        self.data, self.train, self.train_share, self.representation = data, train, train_share, representation
        self.costs, self.validation, self.method, self.lbfgs_memory_mb, self.seed = tuple(costs), validation, method, lbfgs_memory_mb, seed

    def needs(self) -> dict[str, set[str]]:
        """The images of ``data``, and of ``train`` when given."""
        return {"data": {"image"}, "train": {"image"}} if self.train is not None else {"data": {"image"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Fit the probe on the training rows and report its test accuracy."""
        train_x, train_y, test_x, test_y = train_and_test(inputs, self.train is not None, self.train_share, self.seed, self.representation)
        method = self.method
        if method == "auto":
            method = "lbfgs" if train_x.shape[0] * train_x.shape[1] * 8 <= self.lbfgs_memory_mb * 2**20 else "torch"
        if method == "lbfgs":
            result = linear_probe(train_x.numpy(), train_y.numpy(), test_x.numpy(), test_y.numpy(), self.costs, self.validation, self.seed)
        else:
            result = torch_linear_probe(train_x, train_y, test_x, test_y, validation=self.validation, seed=self.seed)
        details = {key: value for key, value in result.items() if key != "accuracy"}
        details.update(method=method, representation=self.representation, train_items=len(train_y), test_items=len(test_y))
        return TaskResult({"accuracy": result["accuracy"]}, details)
