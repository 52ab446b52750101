"""``retrieval``: image-to-text and text-to-image recall@k over a set of images with one caption or
several each (COCO's five), optionally after re-ranking each query's shortlist with the model's
image-text matching head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Sequence

import torch
from pydantic import Field

from flava_kit.constraints import Steps
from flava_kit.contracts import Source
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.metrics import caption_matches, recall_at, reranked_ranks, retrieval_ranks
from flava_kit.evaluation.tasks.base import Features, TaskInputs, TaskResult
from flava_kit.registry import register

DIRECTIONS = ("image_to_text", "text_to_image")

PAIRS_PER_CALL = 4096
"""Pairs handed to ``score_pairs`` at a time: the items it reads again for them are held only that long."""


def caption_owners(images: Features, texts: Features) -> torch.Tensor:
    """``[T]`` the image row of each text row: row ``i`` of both when they are the same items (one
    text each), else each item's run of caption rows (the feature pass writes an item's captions in
    a row under its key), run ``i`` being image row ``i``'s; anything else is an error."""
    if texts.keys == images.keys:
        return torch.arange(len(images))
    runs, owners = [], []
    for key in texts.keys:
        if not runs or runs[-1] != key:
            runs.append(key)
        owners.append(len(runs) - 1)
    if runs != images.keys:
        row = next((i for i, (a, b) in enumerate(zip(images.keys, runs)) if a != b), min(len(images), len(runs)))
        raise FlavaKitError(f"data: image and text features are not the same items ({len(images)} images, {len(texts)} texts of "
                            f"{len(runs)} items; they first differ at row {row}); retrieval needs every item to have both")  # fmt: skip
    return torch.tensor(owners, dtype=torch.long)


def save_recall_png(recalls: dict[str, float], ks: Sequence[int], path: str | Path) -> Path:
    """Draw recall against k for both directions."""
    import matplotlib

    matplotlib.use("Agg")  # no display on an evaluation machine
    import matplotlib.pyplot as plt

    ks = sorted(set(ks))
    figure, axis = plt.subplots(figsize=(5, 4))
    for direction in DIRECTIONS:
        axis.plot(ks, [recalls[f"{direction}_R@{k}"] for k in ks], marker="o", label=direction.replace("_", " "))
        if f"reranked_{direction}_R@{ks[0]}" in recalls:
            axis.plot(ks, [recalls[f"reranked_{direction}_R@{k}"] for k in ks], marker="x", linestyle="--",
                      label=f"{direction.replace('_', ' ')}, re-ranked")  # fmt: skip
    axis.set_xlabel("k")
    axis.set_ylabel("recall@k")
    axis.set_ylim(0, 1.02)
    axis.set_xticks(ks)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


@register("task", "retrieval")
class Retrieval:
    """Retrieval over ``data``'s images and their captions (item ``i``'s image and its text, or each of
    its ``captions``, are true pairs): ``image_to_text_R@k`` and ``text_to_image_R@k`` for each k in
    ``ks``, from the ``projected`` features, with similarities computed ``chunk`` queries at a time
    (never N x T at once). As CLIP_benchmark's ``zeroshot_retrieval`` and the CLIP-style papers
    count them: an image query hits when any of its captions ranks in the top k; every caption is
    a text query (COCO's 5k test images: 25,010), hitting when its image ranks in the top k. Where
    candidates tie with a true match (identical captions), the true match is counted first.

    ``rerank`` > 0 re-scores each query's ``rerank`` most similar candidates with the model's
    image-text matching (ITM) head on the fused pair, as FLAVA and ALBEF re-rank, and adds
    ``reranked_image_to_text_R@k`` and ``reranked_text_to_image_R@k`` (candidates beyond the
    shortlist keep their order behind it). That reads the items of those pairs again, so ``data``
    needs random access (a manifest, an HF dataset, a folder) and one text per item, and the model
    an ITM head (a pretraining model with its ``itm`` objective); it costs ``2 x N x rerank`` fused
    passes at most.
    """

    version = 1

    def __init__(self, data: Source, *, ks: tuple[Steps, ...] = (1, 5, 10), chunk: Steps = 4096,
                 rerank: Annotated[int, Field(ge=0)] = 0):  # fmt: skip
        if not ks:
            raise ValueError("ks: give at least one k")
        self.data, self.ks, self.chunk, self.rerank = data, tuple(ks), chunk, rerank

    def needs(self) -> dict[str, set[str]]:
        """The images and the texts of ``data``."""
        return {"data": {"image", "text"}}

    def run(self, inputs: TaskInputs) -> TaskResult:
        """Rank every text for every image and back; report recall@k (and after re-ranking)."""
        images, texts = inputs.features("data", "image"), inputs.features("data", "text")
        owners = caption_owners(images, texts)  # row i must be one item in both, or every pair is misaligned
        several = len(texts) != len(images)
        if several and self.rerank:
            raise FlavaKitError(f"rerank: re-ranking scores one text per item, but these {len(images)} images have {len(texts)} captions")
        image_features, text_features = images.tensor("projected").float(), texts.tensor("projected").float()
        recalls, shortlists, details = {}, {}, {"pairs": len(texts)}
        if several:
            details.update(images=len(images), captions_per_image=sorted(set(torch.bincount(owners).tolist())))
        # each query's true candidates: an image's captions, a caption's image (None: row i's is row i)
        matches = {"image_to_text": caption_matches(owners, len(images)), "text_to_image": owners[:, None]} if several else {}
        for direction, queries, candidates in (("image_to_text", image_features, text_features),
                                               ("text_to_image", text_features, image_features)):  # fmt: skip
            ranks, shortlist = retrieval_ranks(queries, candidates, self.chunk, self.rerank, matches.get(direction))
            recalls.update(recall_at(ranks, self.ks, direction))
            shortlists[direction] = (ranks, shortlist)
        if self.rerank:
            recalls.update(self._reranked(inputs, shortlists))
            details.update({"rerank": self.rerank, "reranked_by": "itm"})
        return TaskResult(recalls, details, {"recall_at_k.png": lambda path: save_recall_png(recalls, self.ks, path)})

    def _reranked(self, inputs: TaskInputs, shortlists: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Recall@k once each shortlist is reordered by ITM scores; a pair in both directions' lists is scored once."""
        if inputs.score_pairs is None:
            raise FlavaKitError("rerank: this evaluation offers no way to score image-text pairs (TaskInputs.score_pairs)")
        pairs = {}  # (image row, text row) -> where its score goes: (direction, query, position)
        for direction, (_, shortlist) in shortlists.items():
            for query, candidates in enumerate(shortlist.tolist()):
                for position, candidate in enumerate(candidates):
                    pair = (query, candidate) if direction == "image_to_text" else (candidate, query)
                    pairs.setdefault(pair, []).append((direction, query, position))
        order = sorted(pairs)  # grouped by image: the scorer reads each image about once
        scores = []
        for start in range(0, len(order), PAIRS_PER_CALL):
            block = order[start : start + PAIRS_PER_CALL]
            scored = torch.as_tensor(inputs.score_pairs("data", [p[0] for p in block], [p[1] for p in block])).float().reshape(-1)
            if len(scored) != len(block):
                raise FlavaKitError(f"score_pairs returned {len(scored)} scores for {len(block)} pairs")
            scores.append(scored)
        by_direction = {direction: torch.empty(shortlist.shape) for direction, (_, shortlist) in shortlists.items()}
        for pair, score in zip(order, torch.cat(scores).tolist() if scores else []):
            for direction, query, position in pairs[pair]:
                by_direction[direction][query, position] = score
        results = {}
        for direction, (ranks, shortlist) in shortlists.items():
            results.update(recall_at(reranked_ranks(shortlist, by_direction[direction], ranks), self.ks, f"reranked_{direction}"))
        return results
