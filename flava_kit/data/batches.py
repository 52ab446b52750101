"""Pretraining batches: batch ``step`` of a run is a pure function of (seed, step, rank).

So a resumed run sees exactly the batches it would have seen, DataLoader workers can build
batches in any order, and ranks draw different data. Each batch comes from one source, chosen by
the mixing weights (as FLAVA does); paired batches get ITM negatives (a caption swapped for
another row's, label 0) with probability ``itm_negative_prob``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import torch

from flava_kit.data.processor import ImageProcessor
from flava_kit.data.sources import DataError
from flava_kit.data.tokenizer import word_starts


class PretrainingBatches(torch.utils.data.Dataset):
    """Map-style dataset of whole batches: ``batches[step]`` is the batch of that step.

    ``sources`` maps names to sequences of items (``image`` and/or ``text``); ``weights`` gives
    each source's share of batches. Broken items are skipped (and counted in ``skipped``) unless
    ``strict``, which raises instead.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[dict]],
        weights: Mapping[str, float],
        *,
        batch_size: int,
        processor: ImageProcessor,
        tokenizer: Any,
        text_length: int,
        image_masking: Any,
        text_masking: Any,
        itm_negative_prob: float = 0.1,
        seed: int = 0,
        rank: int = 0,
        length: int = 10**9,
        strict: bool = False,
        task: str = "pretrain",
    ):
        empty = [name for name, source in sources.items() if len(source) == 0]
        if empty:
            raise DataError(f"data sources without items: {', '.join(empty)}")
        self.names = list(sources)
        self.sources = sources
        self.weights = torch.tensor([float(weights.get(name, 1.0)) for name in self.names])
        self.batch_size, self.processor, self.tokenizer, self.text_length = batch_size, processor, tokenizer, text_length
        self.image_masking, self.text_masking = image_masking, text_masking
        self.itm_negative_prob, self.seed, self.rank, self.length, self.strict = itm_negative_prob, seed, rank, length, strict
        self.task = task
        self.skipped = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 1_009 + self.rank)
        name = self.names[int(torch.multinomial(self.weights, 1, generator=generator))]
        items = self._items(self.sources[name], generator)
        if self.task == "classify":
            return self._classification_batch(items)
        batch: dict[str, torch.Tensor] = {}
        has_image, has_text = "image" in items[0], "text" in items[0]
        texts = [item["text"] for item in items] if has_text else None
        if has_image and has_text:
            negative = torch.rand(len(items), generator=generator) < self.itm_negative_prob
            if len(items) > 1 and negative.any():  # pair with the next row's caption
                texts = [texts[(i + 1) % len(items)] if negative[i] else t for i, t in enumerate(texts)]
            else:
                negative[:] = False
            batch["itm_labels"] = (~negative).long()
        if has_image:
            batch.update(self.processor([item["image"] for item in items]))
            batch["bool_masked_pos"] = self.image_masking(len(items), generator)
        if has_text:
            encoded = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.text_length,
                                     return_special_tokens_mask=True, return_tensors="pt")  # fmt: skip
            special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
            batch["input_ids"], batch["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
            # Whole-word masking (the contract's optional ``whole_word``) also needs each word's first token.
            words = {"word_starts": word_starts(encoded)} if getattr(self.text_masking, "whole_word", False) else {}
            batch["input_ids_masked"], batch["mlm_labels"] = self.text_masking(encoded["input_ids"], special, generator, **words)
        return batch

    def _classification_batch(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Images and/or texts with their ``labels`` (no masking, no negatives)."""
        if any(item.get("label", -1) < 0 for item in items):
            raise DataError("classification batches need items with a label (>= 0); this source has unlabelled items")
        batch = {"labels": torch.tensor([item["label"] for item in items])}
        if "image" in items[0]:
            batch.update(self.processor([item["image"] for item in items], codebook=False))
        if "text" in items[0]:
            encoded = self.tokenizer([item["text"] for item in items], padding="max_length", truncation=True,
                                     max_length=self.text_length, return_tensors="pt")  # fmt: skip
            batch["input_ids"], batch["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
        return batch

    def _items(self, source: Sequence[dict], generator: torch.Generator) -> list[dict]:
        items = []
        for _ in range(100 * self.batch_size):  # bounded: a source of nothing but broken items stops
            if len(items) == self.batch_size:
                return items
            index = int(torch.randint(len(source), (1,), generator=generator))
            try:
                items.append(source[index])
            except DataError as exc:
                if self.strict:
                    raise
                self.skipped += 1
                warnings.warn(f"skipped a broken item ({self.skipped} so far): {exc}", stacklevel=2)
        raise DataError(f"could not read {self.batch_size} items after {100 * self.batch_size} tries; every item seems broken")
