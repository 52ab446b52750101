"""The numbers the field reports, from scores: top-k accuracy, mean per-class recall, retrieval
recall@k computed in chunks, with several captions per image (and after re-ranking a shortlist),
a fine-tuned classifier's accuracy, macro-F1, Matthews correlation and ROC AUC (scikit-learn's),
VQA accuracy, and a linear probe fitted with scikit-learn's L-BFGS."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch


def classification_report(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``scores`` ``[N, C]`` (higher is better), ``labels`` ``[N]`` -> ``acc@k`` for each k (capped at C)
    and ``mean_per_class_recall`` (the mean over classes present in ``labels`` of their recall@1)."""
    labels = torch.as_tensor(labels)
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    report = {f"acc@{k}": (ranked[:, : min(k, scores.shape[1])] == labels[:, None]).any(1).float().mean().item() for k in ks}
    hit = ranked[:, 0] == labels
    recalls = [hit[labels == c].float().mean().item() for c in labels.unique()]
    report["mean_per_class_recall"] = float(np.mean(recalls))
    return report


def caption_matches(owners: torch.Tensor, images: int) -> torch.Tensor:
    """``[images, m]`` the text rows of each image (its captions, in row order), padded with -1 to the
    most any image has, from ``owners`` ``[T]`` (text row ``t`` is a caption of image ``owners[t]``):
    the ``matches`` of image-to-text retrieval. An image without a caption is an error."""
    owners = torch.as_tensor(owners, dtype=torch.long)
    if len(owners) and not (0 <= int(owners.min()) and int(owners.max()) < images):
        raise ValueError(f"a caption names image {int(owners.max()) if owners.max() >= images else int(owners.min())}, "
                         f"but the images are 0..{images - 1}")  # fmt: skip
    counts = torch.bincount(owners, minlength=images)
    if bool((counts == 0).any()):
        raise ValueError(f"every image needs a caption: {int((counts == 0).sum())} of the {images} have none")
    order = torch.argsort(owners, stable=True)  # captions grouped by image, each image's in row order
    first = torch.cumsum(counts, 0) - counts
    column = torch.arange(len(owners)) - first[owners[order]]
    matches = torch.full((images, int(counts.max())), -1, dtype=torch.long)
    matches[owners[order], column] = order
    return matches


def retrieval_ranks(queries: torch.Tensor, candidates: torch.Tensor, chunk: int = 4096, shortlist: int = 0,
                    matches: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(``[Q]`` rank of each query's best true match, ``[Q, shortlist]`` its best candidates, best
    first, that true match among them whenever its rank is below ``shortlist``).

    ``matches`` ``[Q, m]``: the candidate indices that are query ``i``'s true matches (-1 pads a
    shorter row): an image's several captions, or a caption's one image. None: query ``i``'s one
    true match is candidate ``i``. A rank is the number of candidates scoring strictly above the
    query's best-scoring true match, so ``rank < k`` is "some true match is in the top k", the
    recall@k of CLIP-style retrieval (CLIP_benchmark's ``zeroshot_retrieval``). Similarities are
    computed ``chunk`` queries at a time (never ``Q x N`` at once)."""
    ranks, best = [], []
    for start in range(0, len(queries), chunk):
        scores = queries[start : start + chunk] @ candidates.T
        mine = torch.arange(start, start + len(scores))[:, None] if matches is None else matches[start : start + len(scores)]
        valid = mine >= 0
        # the true matches' scores from the same product, so one never outranks itself by rounding
        true_scores = scores.gather(1, mine.clamp(min=0)).masked_fill(~valid, float("-inf"))
        best_true, column = true_scores.max(1)
        rank = (scores > best_true[:, None]).sum(1)
        top = scores.topk(min(shortlist, scores.shape[1]), dim=1).indices
        # Ties are broken in the true match's favour, as its rank counts only candidates strictly above it:
        # a true match tied into the first n (duplicate captions) is on its shortlist, in the last place.
        if top.shape[1]:
            listed = ((top[:, :, None] == mine[:, None, :]) & valid[:, None, :]).any((1, 2))
            left_out = ~listed & (rank < top.shape[1])
            top[left_out, -1] = mine.gather(1, column[:, None])[:, 0][left_out]
        ranks.append(rank)
        best.append(top)
    return torch.cat(ranks), torch.cat(best) if best else torch.zeros(0, 0, dtype=torch.long)


def recall_at(ranks: torch.Tensor, ks: Sequence[int], prefix: str) -> dict[str, float]:
    """``{prefix}_R@k``: the share of queries whose true match ranks among the first ``k``."""
    return {f"{prefix}_R@{k}": (ranks < k).float().mean().item() for k in ks}


def retrieval_recall_at(image_features: torch.Tensor, text_features: torch.Tensor, ks: Sequence[int] = (1, 5, 10),
                        chunk: int = 4096, owners: torch.Tensor | None = None) -> dict[str, float]:  # fmt: skip
    """Recall@k of image->text and text->image retrieval (ranks from :func:`retrieval_ranks`, so
    ``N x T`` scores are never held at once). Without ``owners``, row ``i`` of each is a true pair;
    with ``owners`` ``[T]``, text row ``t`` is one of image ``owners[t]``'s captions: an image query
    hits when any of its captions is in the top k, and every caption is a text query."""
    if owners is None:
        matches = {"image_to_text": None, "text_to_image": None}
    else:
        owners = torch.as_tensor(owners, dtype=torch.long)
        matches = {"image_to_text": caption_matches(owners, len(image_features)), "text_to_image": owners[:, None]}
    results = {}
    for direction, queries, candidates in (("image_to_text", image_features, text_features),
                                           ("text_to_image", text_features, image_features)):  # fmt: skip
        results.update(recall_at(retrieval_ranks(queries, candidates, chunk, matches=matches[direction])[0], ks, direction))
    return results


def reranked_ranks(shortlist: torch.Tensor, scores: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """``[Q]`` ranks of the true matches once each query's ``[Q, n]`` ``shortlist`` (candidate
    indices, query ``i``'s true match being ``i``) is reordered by ``scores`` ``[Q, n]`` (higher first).
    A true match outside its shortlist keeps its rank ``ranks`` (at least ``n``: behind the list)."""
    truth = shortlist == torch.arange(len(shortlist))[:, None]
    true_score = scores.masked_fill(~truth, float("-inf")).max(1).values
    return torch.where(truth.any(1), (scores > true_score[:, None]).sum(1), ranks.clamp(min=shortlist.shape[1]))


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, notes) of a classifier's ``[N, C]`` ``logits`` against ``[N]`` labels, by scikit-learn:
    ``accuracy``, ``macro_f1`` (over the classes in labels or predictions), ``mcc`` (Matthews) and
    ``roc_auc`` (binary: of class 1's probability; more classes: one-vs-rest, macro-averaged). A
    metric that is undefined here (AUC with one class present) is left out, and ``notes`` says why."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

    labels = np.asarray(labels)
    probabilities = torch.softmax(torch.as_tensor(np.asarray(logits), dtype=torch.float64), dim=1).numpy()
    predicted = probabilities.argmax(1)
    classes = probabilities.shape[1]
    metrics = {"accuracy": float(accuracy_score(labels, predicted)),
               "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
               "mcc": float(matthews_corrcoef(labels, predicted))}  # fmt: skip
    auc, reason = math.nan, None
    with warnings.catch_warnings(record=True) as caught:  # scikit-learn raises, or warns and returns NaN, by version
        warnings.simplefilter("always", UndefinedMetricWarning)
        try:
            if classes < 2:
                raise ValueError("a one-class classifier ranks nothing")
            if classes == 2:
                auc = float(roc_auc_score(labels, probabilities[:, 1]))
            else:
                auc = float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=list(range(classes))))
        except ValueError as exc:
            reason = str(exc)
    notes = {}
    if math.isnan(auc):
        notes["roc_auc"] = f"left out: {reason or (caught[-1].message if caught else 'undefined on these labels')}"
    else:
        metrics["roc_auc"] = auc
    return metrics, notes


def vqa_accuracy(predicted: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """The VQA accuracy of ``predicted[i]`` for question ``i`` with annotator answers ``answers[i]``:
    the mean of :func:`~flava_kit.data.answers.answer_credit` (``min(#annotators who gave it / 3, 1)``)."""
    from flava_kit.data.answers import answer_credit

    return float(np.mean([answer_credit(guess, given) for guess, given in zip(predicted, answers, strict=True)]))


def answer_coverage(vocabulary: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """How far an answer vocabulary reaches: ``answerable``, the share of questions whose most-given
    answer (any of them, on a tie) is in the vocabulary, and ``ceiling``, the VQA accuracy of always
    predicting the best-credited vocabulary answer (what a perfect model over this vocabulary scores)."""
    from flava_kit.data.answers import answer_credit

    known, answerable, best = set(vocabulary), [], []
    for given in answers:
        counts = {answer: given.count(answer) for answer in set(given)}
        top = max(counts.values(), default=0)
        answerable.append(any(answer in known for answer, count in counts.items() if count == top))
        best.append(max((answer_credit(answer, given) for answer in counts if answer in known), default=0.0))
    return {"answerable": float(np.mean(answerable)), "ceiling": float(np.mean(best))}


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray,
                 costs: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0), validation: float = 0.2, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Logistic regression (L-BFGS) on frozen features, as the FLAVA paper probes: the inverse
    regularisation ``C`` is chosen on a ``validation`` share carved from the training split, then the
    probe is refitted on all of it. Returns test ``accuracy`` and the chosen ``C``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    try:  # stratified where every class can be in both parts, else a plain random split
        parts = train_test_split(train_features, train_labels, test_size=validation, random_state=seed, stratify=train_labels)
    except ValueError:
        parts = train_test_split(train_features, train_labels, test_size=validation, random_state=seed)
    fit_x, val_x, fit_y, val_y = parts

    def probe(cost: float) -> LogisticRegression:
        return LogisticRegression(C=cost, solver="lbfgs", max_iter=1000)

    best = max(costs, key=lambda cost: probe(cost).fit(fit_x, fit_y).score(val_x, val_y))
    accuracy = probe(best).fit(train_features, train_labels).score(test_features, test_labels)
    return {"accuracy": float(accuracy), "C": float(best)}


def torch_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, test_labels: torch.Tensor,
                       weight_decays: Sequence[float] = (0.0, 1e-4, 1e-2), epochs: int = 30, batch_size: int = 1024, lr: float = 1e-2,
                       validation: float = 0.2, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """A linear probe trained with AdamW in mini-batches, for features too many for L-BFGS in
    memory (pass memory-mapped arrays, e.g. ``torch.from_numpy(np.load(..., mmap_mode="r"))``:
    only one batch is read at a time). The weight decay is chosen on a ``validation`` share of the
    training rows; returns test ``accuracy`` and the chosen ``weight_decay``."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_labels), generator=generator)
    cut = int(len(order) * (1 - validation))
    classes = int(max(train_labels.max(), test_labels.max())) + 1

    def fit(rows: torch.Tensor, decay: float) -> torch.nn.Linear:
        torch.manual_seed(seed)
        probe = torch.nn.Linear(train_features.shape[1], classes)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=decay)
        for _ in range(epochs):
            for batch in rows[torch.randperm(len(rows), generator=generator)].split(batch_size):
                index = batch.sort().values  # sorted reads are sequential on a memory map
                loss = torch.nn.functional.cross_entropy(probe(torch.as_tensor(train_features[index]).float()), torch.as_tensor(train_labels[index]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return probe

    @torch.no_grad()
    def accuracy(probe: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
        correct = sum(int((probe(torch.as_tensor(features[i : i + batch_size]).float()).argmax(1) == torch.as_tensor(labels[i : i + batch_size])).sum())
                      for i in range(0, len(labels), batch_size))  # fmt: skip
        return correct / len(labels)

    train_rows, val_rows = order[:cut], order[cut:]
    best = max(weight_decays, key=lambda decay: accuracy(fit(train_rows, decay), train_features[val_rows.sort().values], train_labels[val_rows.sort().values]))
    return {"accuracy": accuracy(fit(order, best), test_features, test_labels), "weight_decay": float(best)}
