"""``zero_shot_classification``: images scored against prompted class names (CLIP's protocol), or a
fine-tuned classifier scored by its own logits."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from flava_kit.constraints import Steps
from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.report import MAX_CONFUSION_CLASSES, save_confusion_png
from flava_kit.evaluation.tasks.base import Features, TaskInputs, TaskResult
from flava_kit.registry import register

TEMPLATES = ("a photo of a {}", "a {}", "a picture of a {}")
"""The prompt templates used when a task sets none (class prompts are ensembled over them)."""

CHUNK = 4096
"""Images scored at a time, so an ``[N, C]`` score matrix is never held whole (N = 50,000, C = 1,000)."""


def read_templates(templates: Sequence[str] | str | None) -> list[str]:
    """The prompt templates: ``templates`` (a list, or a file with one per line), else :data:`TEMPLATES`.
    Each must hold one ``{}``, where the class name goes."""
    if templates is None:
        return list(TEMPLATES)
    if isinstance(templates, str):
        path = Path(templates)
        if not path.is_file():
            raise ValueError(f"templates: {path} is not a file (one template per line)")
        templates = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not templates:
        raise ValueError("templates: none given")
    for template in templates:
        try:
            ok = "{}" in template and template.format("x") != template.format("y")
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"template {template!r} must hold one '{{}}' where the class name goes (and no other braces)")
    return list(templates)


def chunked_class_report(chunks: Iterator[tuple[int, torch.Tensor]], labels: torch.Tensor, class_names: Sequence[str],
                         ks: Sequence[int]) -> dict:  # fmt: skip
    """What :func:`~flava_kit.evaluation.report.class_report` reports (plus ``acc@k`` for each k), from
    ``(first row, [n, C] scores)`` chunks: only the confusion and the top-k hit counts are kept."""
    classes = len(class_names)
    ks = sorted(set(ks) | {1})
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    hits = dict.fromkeys(ks, 0)
    for start, scores in chunks:
        truth = labels[start : start + len(scores)]
        ranked = scores.topk(min(ks[-1], classes), dim=1).indices
        confusion.index_put_((truth, ranked[:, 0]), torch.ones_like(truth), accumulate=True)
        for k in ks:  # k beyond the class count counts every class, as classification_report does
            hits[k] += int((ranked[:, : min(k, classes)] == truth[:, None]).any(1).sum())
    images = confusion.sum(1)
    recalls = [float(confusion[c, c]) / int(images[c]) if images[c] else None for c in range(classes)]
    present = [recall for recall in recalls if recall is not None]
    return {
        **{f"acc@{k}": hits[k] / len(labels) for k in ks},
        "mean_per_class_recall": sum(present) / len(present),
        "per_class": [{"class": name, "images": int(images[c]), "recall": recalls[c]} for c, name in enumerate(class_names)],
        "confusion": confusion.tolist(),
    }


@register("task", "zero_shot_classification")
class ZeroShotClassification:
    """Zero-shot classification of ``data``'s images: each class is the L2-normalised mean of its
    prompts' text features over ``templates`` (CLIP's ensembling), each image goes to the class whose
    embedding is nearest its ``projected`` features. For a fine-tuned classifier (``model_kind``
    ``classifier``) the image features' ``logits`` are the scores instead.

    ``class_names``: a list, a file with one per line, or (unset) the source's own (a folder's
    subfolders, a CLIP_benchmark dataset's ``classnames.txt``). ``templates``: a list of ``{}``
    templates, or a file with one per line; unset, the source's own (``templates``: a
    CLIP_benchmark dataset's ``zeroshot_classification_templates.txt``), else :data:`TEMPLATES`. Reports
    ``accuracy`` (top-1), ``acc@k`` for each k > 1 in ``ks``, ``mean_per_class_recall``, a per-class
    table and the confusion matrix (a picture for up to 50 classes); details say where the class
    names and templates came from (``recipe``, ``dataset`` or ``default``).
    """

    version = 1

    def __init__(self, data: Source, *, class_names: list[str] | str | None = None, templates: list[str] | str | None = None,
                 ks: tuple[Steps, ...] = (1, 5)):  # fmt: skip
        self.data, self.class_names, self.ks = data, class_names, tuple(ks)
        own = getattr(data, "templates", None) if templates is None else None  # the dataset's prompts, when the recipe gives none
        self.templates_from = "recipe" if templates is not None else "dataset" if own else "default"
        self.templates = read_templates(templates if templates is not None else own or None)

    def needs(self) -> dict[str, set[str]]:
        """The images of ``data``."""
        return {"data": {"image"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Score every image chunk by chunk and report; see the class docstring."""
        features = inputs.features("data", "image")
        labels = features.labelled("data")
        names = inputs.class_names("data", self.class_names)
        if int(labels.max()) >= len(names):
            raise FlavaKitError(f"data: an item has label {int(labels.max())}, but there are only {len(names)} class names")
        classifier = inputs.model_kind == "classifier"
        chunks = self._logit_chunks(features, names) if classifier else self._prompt_chunks(features, names, inputs)
        report = chunked_class_report(chunks, labels, names, self.ks)
        metrics = {"accuracy": report["acc@1"], "mean_per_class_recall": report["mean_per_class_recall"]}
        metrics.update({f"acc@{k}": report[f"acc@{k}"] for k in self.ks if k > 1})
        details = {
            "chance": 1 / len(names), "images": len(labels), "class_names": names, "scores": "logits" if classifier else "prompts",
            "templates": None if classifier else self.templates, "per_class": report["per_class"], "confusion": report["confusion"],
            "class_names_from": "recipe" if self.class_names else "dataset", "templates_from": None if classifier else self.templates_from,
        }  # fmt: skip
        pictures = {}
        if len(names) <= MAX_CONFUSION_CLASSES:  # larger matrices are unreadable; save_confusion_png draws nothing
            pictures["confusion.png"] = lambda path: save_confusion_png(report["confusion"], names, path)
        return TaskResult(metrics, details, pictures)

    def _prompt_chunks(self, features: Features, names: list[str], inputs: TaskInputs) -> Iterator[tuple[int, torch.Tensor]]:
        prompts = [template.format(name) for name in names for template in self.templates]
        encoded = torch.as_tensor(inputs.encode_texts(prompts)).float().cpu()
        if encoded.shape[0] != len(prompts):
            raise FlavaKitError(f"encode_texts returned {encoded.shape[0]} rows for {len(prompts)} prompts")
        weights = F.normalize(encoded.view(len(names), len(self.templates), -1).mean(1), dim=-1)
        images = features.tensor("projected")
        if images.shape[1] != weights.shape[1]:
            raise FlavaKitError(f"image features have {images.shape[1]} dimensions, the class prompts' {weights.shape[1]}")
        for start in range(0, len(images), CHUNK):
            yield start, images[start : start + CHUNK].float() @ weights.T

    @staticmethod
    def _logit_chunks(features: Features, names: list[str]) -> Iterator[tuple[int, torch.Tensor]]:
        logits = features.tensor("logits")
        if logits.shape[1] != len(names):
            raise FlavaKitError(f"the classifier predicts {logits.shape[1]} classes, but there are {len(names)} class names")
        for start in range(0, len(logits), CHUNK):
            yield start, logits[start : start + CHUNK].float()
