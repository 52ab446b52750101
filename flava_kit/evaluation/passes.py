"""One pass over a data source, in a fixed order, as batches of model inputs (in DataLoader workers).

Training reads sources forever, shuffled; evaluation reads every item once. Each raw item has an
*order*, ``(shard, position)`` (``(0, index)`` for sources with random access), so features are
stored in the source's own order however many workers read it, and an interrupted pass resumes by
skipping the orders already done without decoding them.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from flava_kit.data.batches import broken_item_error, is_score
from flava_kit.data.sources import DataError
from flava_kit.data.sources.base import Broken
from flava_kit.data.tokenizer import Truncations
from flava_kit.errors import FlavaKitError


def raw_items(source: Any, worker: int = 0, workers: int = 1) -> Iterator[tuple[tuple[int, int], Any]]:
    """``(order, raw)`` of this worker's share of one pass: items ``worker::workers`` of a source with
    random access, shards ``worker::workers`` of a sharded one (each in its stored order, unshuffled);
    any other source is read by worker 0 through ``samples`` until its position starts a second epoch
    (or, without an ``epoch`` in its positions, for ``len(source)`` items)."""
    if hasattr(source, "read") and hasattr(source, "__len__"):
        for index in range(worker, len(source), workers):
            yield (0, index), index
    elif hasattr(source, "shards") and hasattr(source, "read_shard"):
        for shard in range(worker, len(source.shards), workers):
            for position, raw in enumerate(source.read_shard(source.shards[shard])):
                yield (shard, position), raw
    elif worker == 0:
        length = len(source) if hasattr(source, "__len__") else None
        for count, (raw, position) in enumerate(source.samples(0, 1, 0)):
            if position.get("epoch", 0) > 0 or (length is not None and count >= length):
                return
            if "epoch" not in position and length is None:
                raise FlavaKitError(f"{type(source).__name__}: cannot tell where one pass over it ends (no epoch in its positions, no __len__)")
            yield (0, count), raw


def labels_tensor(labels: list) -> torch.Tensor:
    """Items' labels (-1 where none) as int64 class indices, or as float64 when some label is a
    score (a regression target, kept exact for its correlations)."""
    if any(is_score(label) for label in labels):
        return torch.tensor([float(label) for label in labels], dtype=torch.float64)
    return torch.tensor([int(label) for label in labels], dtype=torch.long)


class EncodingInputs(IterableDataset):
    """Batches of one pass: ``orders`` ``[B, 2]``, ``keys``, ``labels`` (see :func:`labels_tensor`), ``skipped``
    (orders of broken items) and ``broken`` (why each could not be read), ``answers`` (each item's
    VQA answers, None where it has none; only when some item has them), ``truncated`` and
    ``truncated_example`` (see :class:`~flava_kit.data.tokenizer.Truncations`) and, per modality
    asked, ``pixel_values`` or ``input_ids`` and ``attention_mask`` (plus ``token_type_ids`` for
    items with a ``text_pair``, encoded as BERT pairs; where some item has ``captions``, a row per
    caption, item by item, and ``text_rows`` ``[B]``: how many rows each item has). Orders in
    ``done`` are skipped without decoding (a resumed pass). A broken item is skipped (the reader of
    the batches warns), or with ``strict`` stops the pass with a :class:`DataError` naming it
    (``settings.strict``)."""

    def __init__(self, source: Any, modalities: set[str], processor: Any, tokenizer: Any, text_length: int, batch_size: int,
                 done: set[tuple[int, int]] | None = None, where: str = "data", strict: bool = False):  # fmt: skip
        self.source, self.modalities, self.processor, self.tokenizer = source, modalities, processor, tokenizer
        self.text_length, self.batch_size, self.done, self.where, self.strict = text_length, batch_size, done or set(), where, strict
        self.truncations = Truncations()

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        self.truncations = Truncations()
        items, orders, skipped, broken = [], [], [], []
        for order, raw in raw_items(self.source, worker, workers):
            if order in self.done:
                continue
            item = self._decode(raw)
            if isinstance(item, str):
                skipped.append(order)
                broken.append(item)
                continue
            items.append(item)
            orders.append(order)
            if len(items) == self.batch_size:
                yield self._batch(items, orders, skipped, broken)
                items, orders, skipped, broken = [], [], [], []
        if items or skipped:
            yield self._batch(items, orders, skipped, broken)

    def _decode(self, raw: Any) -> dict | str:
        """The item, or why it cannot be read (skipped and counted, as training skips it)."""
        try:
            if isinstance(raw, Broken):
                raise DataError(raw.message)
            item = self.source.decode(raw)
        except DataError as exc:
            if self.strict:
                raise broken_item_error(self.where, exc, "settings.strict") from exc
            return str(exc)
        for modality in self.modalities:
            if modality not in item:
                raise FlavaKitError(f"{self.where}: item {item.get('key')} has no {modality}, and a task here reads its {modality} features")
        return item

    def _batch(self, items: list[dict], orders: list, skipped: list, broken: list[str]) -> dict:
        batch = {"orders": torch.tensor(orders, dtype=torch.long).view(-1, 2), "keys": [str(item["key"]) for item in items],
                 "labels": labels_tensor([item.get("label", -1) for item in items]),
                 "skipped": torch.tensor(skipped, dtype=torch.long).view(-1, 2), "broken": broken,
                 "truncated": 0, "truncated_example": None}  # fmt: skip
        if any("answers" in item for item in items):
            batch["answers"] = [[str(a) for a in item["answers"]] if "answers" in item else None for item in items]
        if items and "image" in self.modalities:
            batch["pixel_values"] = self.processor([item["image"] for item in items], codebook=False)["pixel_values"]
        if items and "text" in self.modalities:
            batch.update(self._tokens(items))
        return batch

    def _tokens(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask``; items with a ``text_pair`` as BERT pairs (``[CLS] text
        [SEP] pair [SEP]``) with ``token_type_ids`` (0, then 1), as training encodes them."""
        pairs = [item.get("text_pair") for item in items]
        paired = any(pair is not None for pair in pairs)
        if paired and any(pair is None for pair in pairs):
            key = next(item["key"] for item, pair in zip(items, pairs) if pair is None)
            raise FlavaKitError(f"{self.where}: item {key} has no text_pair, but other items do: a sentence-pair source needs one "
                                "on every item")  # fmt: skip
        texts, rows = [item["text"] for item in items], {}
        if any("captions" in item for item in items):  # every caption a text row, an item's in a row (retrieval's several captions)
            if paired:
                raise FlavaKitError(f"{self.where}: an item has several captions and a text_pair; captions are for retrieval, pairs one text each")
            captions = [item.get("captions") or [item["text"]] for item in items]
            texts, rows = [text for each in captions for text in each], {"text_rows": torch.tensor([len(each) for each in captions])}
        encoded = self.tokenizer(texts, pairs if paired else None, padding="max_length", truncation=True,
                                 max_length=self.text_length, return_tensors="pt", return_token_type_ids=paired)  # fmt: skip
        cut = self.truncations.note(self.tokenizer, encoded, texts, pairs if paired else None)
        return {**cut, **rows, **{name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}}


def encoding_batches(inputs: EncodingInputs, workers: int) -> DataLoader:
    """The pass's batches, read by ``workers`` DataLoader processes (0: in this process)."""
    return DataLoader(inputs, batch_size=None, num_workers=workers, persistent_workers=False)
