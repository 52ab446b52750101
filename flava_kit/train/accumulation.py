"""``train.accumulation: K``: one optimizer step over K micro-batches that is exactly one step on
their whole batch, with the memory of one micro-batch.

A step's batch (K × ``data.batch_size`` items, drawn, masked and given ITM negatives as one batch)
is split into K micro-batches. Naively summing their gradients is wrong in two ways, and both are
fixed here:

- A contrastive loss over a micro-batch of B sees B − 1 negatives, not KB − 1. Objectives that
  compare items across the batch declare it (``batch_rows`` / ``batch_loss``, see the objective
  contract) and are gradient-cached (GradCache, Gao et al. 2021): (1) every micro-batch's rows
  without a graph; (2) the loss over all of them and its gradient with respect to the rows;
  (3) every micro-batch again with its graph, back-propagating those row gradients (and its
  per-item losses). Step 3 replays step 1's random state, so dropout draws the same masks.
- A mean over masked tokens is not the mean of the micro-batches' means when they hold different
  numbers of tokens: per-item losses are weighted by their ``terms`` (step 1 counts them).

Under ``torchrun`` the gradients are all-reduced once per step (the DDP wrapper is bypassed; its
per-backward reduction would run K times), and the contrastive gather spans ranks × micro-batches.
Models without batch-level objectives (classifiers) skip steps 1 and 2: their losses are means over
rows, and every micro-batch holds as many.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.distributed as dist


def split_batch(batch: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """``batch``'s tensors cut into ``parts`` micro-batches along the first dimension, in order."""
    pieces = {key: torch.tensor_split(value, parts) for key, value in batch.items()}
    return [{key: chunks[i] for key, chunks in pieces.items()} for i in range(parts)]


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _number(value: Any) -> float:
    return float(value.detach() if torch.is_tensor(value) else value)


class ExactAccumulation:
    """Back-propagates one step over micro-batches (see the module's text) into ``model``'s ``.grad``.

    ``autocast`` opens the run's precision context; ``scale`` is the gradient scaler's ``scale``.
    ``averaged``: the gradients are averaged over ranks after each backward (FSDP), not summed
    here once (replicated models under ``torchrun``).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, autocast: Callable[[], Any], scale: Callable, averaged: bool = False):
        self.model, self.device, self.autocast, self.scale, self.averaged = model, device, autocast, scale, averaged
        self.distributed = dist.is_available() and dist.is_initialized()
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.batch_level = hasattr(model, "score_batch_level")

    def backward(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """Accumulate the step's gradients; return its losses and metrics as one batch would report them."""
        parts = len(micro_batches)
        spread = 1 if self.averaged else self.world_size  # the share of the global loss one rank back-propagates
        equal, equal_shown = [1 / (parts * spread)] * parts, [1 / parts] * parts
        states, rows, terms = self._first_pass(micro_batches) if self.batch_level else ([None] * parts, [], [])
        weights, shown = self._weights(terms, parts, spread)
        row_grads, losses, metrics = self._score_whole(rows, spread) if any(rows) else ({}, {}, {})
        offset = 0
        for i, micro in enumerate(micro_batches):
            if states[i] is not None:
                _set_rng_state(states[i], self.device)
            with self.autocast():
                out = self.model(**micro, defer_batch_level=True) if self.batch_level else self.model(**micro)
            per_item = out.losses if self.batch_level else {"loss": out.loss}
            total: Any = sum(weights.get(name, equal)[i] * value for name, value in per_item.items())
            total = self.scale(total) if torch.is_tensor(total) else total
            size = next(v.shape[0] for v in micro.values() if torch.is_tensor(v))
            for name, named in getattr(out, "rows", {}).items():  # the cached gradients of the rows (step 2)
                for key, grad in row_grads.get(name, {}).items():
                    total = total + (named[key] * grad[offset : offset + size]).sum()
            offset += size
            if torch.is_tensor(total):
                total.backward()
            reported = {**out.losses, "loss": out.loss} if not self.batch_level else out.losses
            for name, value in reported.items():
                losses[name] = losses.get(name, 0.0) + shown.get(name, equal_shown)[i] * _number(value)
            for name, value in getattr(out, "metrics", {}).items():
                metrics[name] = metrics.get(name, 0.0) + _number(value) / parts
        if self.distributed and not self.averaged:
            reduce_gradients([p for p in self.model.parameters() if p.requires_grad])
        loss = losses.pop("loss") if not self.batch_level else sum(losses.values())
        return {"loss": loss, **losses, **metrics}

    def _first_pass(self, micro_batches: list[dict[str, Any]]) -> tuple[list, list, list]:
        """Step 1: each micro-batch's random state, batch-level rows (no graph) and per-item terms."""
        states, rows, terms = [], [], []
        with torch.no_grad():
            for micro in micro_batches:
                states.append(_rng_state(self.device))
                with self.autocast():
                    out = self.model(**micro, defer_batch_level=True)
                rows.append({name: {key: t.detach() for key, t in named.items()} for name, named in out.rows.items()})
                terms.append(dict(out.terms))
        return states, rows, terms

    def _weights(self, terms: list[dict], parts: int, spread: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """Per objective and micro-batch: the weight its loss is back-propagated with, and the
        (local) share it has in the step's reported loss. Objectives without terms: equal shares."""
        counted = sorted({name for named in terms for name, value in named.items() if value is not None})
        if not counted:
            return {}, {}
        local = torch.tensor([[_number(named.get(name) or 0) for name in counted] for named in terms], dtype=torch.float64)
        total_local = local.sum(0)
        total = total_local.clone()
        if self.distributed:
            total = total.to(self.device)
            dist.all_reduce(total)
            total = total.cpu()
        ranks_per_spread = self.world_size / spread
        weights = {name: [float(local[i, j] / total[j] * ranks_per_spread) if total[j] else 0.0 for i in range(parts)]
                   for j, name in enumerate(counted)}  # fmt: skip
        shown = {name: [float(local[i, j] / total_local[j]) if total_local[j] else 0.0 for i in range(parts)] for j, name in enumerate(counted)}
        return weights, shown

    def _score_whole(self, rows: list[dict], spread: int) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, float], dict[str, float]]:
        """Step 2: the batch-level losses over every micro-batch's rows, back-propagated to the rows
        (whose gradients are returned) and to the objectives' own parameters (theirs, once); the
        losses and metrics as one batch would report them."""
        whole = {name: {key: torch.cat([r[name][key] for r in rows]) for key in rows[0][name]} for name in rows[0]}
        for named in whole.values():
            for tensor in named.values():
                tensor.requires_grad_(tensor.is_floating_point())
        with self.autocast():
            results = self.model.score_batch_level(whole)
        weights, _ = self._weights([{name: result.terms for name, result in results.items()}], 1, spread)
        self.scale(sum(weights.get(name, [1 / spread])[0] * result.loss for name, result in results.items())).backward()
        grads = {name: {key: t.grad for key, t in named.items() if t.grad is not None} for name, named in whole.items()}
        losses = {name: _number(result.loss) for name, result in results.items()}
        metrics = {f"{name}/{metric}": _number(value) for name, result in results.items() for metric, value in result.metrics.items()}
        return grads, losses, metrics


def reduce_gradients(params: list[torch.nn.Parameter], bucket_mib: float = 64) -> None:
    """Sum ``params``' gradients over every rank, in buckets of about ``bucket_mib``. A parameter
    with no gradient on some ranks gets zeros there; one with none anywhere keeps None (AdamW
    then leaves it alone, as in one process)."""
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device if params else "cpu")
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    grads = []
    for param, anywhere in zip(params, present.tolist()):
        if anywhere:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            grads.append(param.grad)
    limit, bucket, size = bucket_mib * 2**20, [], 0
    for grad in grads + [None]:
        if grad is not None:
            bucket.append(grad)
            size += grad.numel() * grad.element_size()
        if bucket and (grad is None or size >= limit):
            flat = torch._utils._flatten_dense_tensors(bucket)
            dist.all_reduce(flat)
            for target, reduced in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
                target.copy_(reduced)
            bucket, size = [], 0
