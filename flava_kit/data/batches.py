"""Pretraining batches, streamed from the sources; batch ``step`` depends only on the seed, the
step, the rank and where the sources' lanes stood, so a resumed run sees exactly the batches an
uninterrupted one would have.

Each batch comes from one source, drawn by the sources' weights (as FLAVA does); paired batches
get ITM negatives (a caption swapped for another row's, label 0) with probability
``itm_negative_prob``. With ``W`` DataLoader workers, step ``s`` is built by the worker reading
lane ``s mod W`` of its rank (see :class:`flava_kit.contracts.Source`), so the DataLoader's
round-robin over workers returns the steps in order.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any, Iterator, Mapping

import torch

from flava_kit.data.answers import answer_scores
from flava_kit.data.processor import ImageProcessor
from flava_kit.data.sources.base import Broken, DataError
from flava_kit.data.tokenizer import Truncations, word_starts


def loader_batches(loader: Any) -> Iterator[dict[str, Any]]:
    """Iterate a DataLoader (over :class:`PretrainingBatches`, or an evaluation pass); a data error
    raised in a worker process comes back as itself, not wrapped in the worker's traceback text.
    Over a :class:`PretrainingBatches` window, the texts its readers cut to fit are added up and
    warned about once: when the window's last batch is read, or when reading stops before it."""
    window = loader.dataset if isinstance(getattr(loader, "dataset", None), PretrainingBatches) else None
    truncations, read, last = Truncations(), 0, None if window is None else window.stop - window.start
    try:
        for batch in loader:
            read += 1
            if window is not None:
                truncations.take(batch["data_position"], len(batch["keys"]))
                if read == last:
                    window.warn_truncations(truncations)
            yield batch
    except DataError as exc:
        message = str(exc)
        if "Original Traceback" in message:  # torch's ExceptionWrapper: the last line is "module.DataError: message"
            message = message.rstrip().splitlines()[-1].split("Error: ", 1)[-1]
        raise DataError(message) from None
    finally:
        if window is not None and read != last:  # stopped early (or closed): still said once
            window.warn_truncations(truncations)


WARNED_SKIPS = 10
"""Skipped items warned about one by one, per lane (or evaluation pass); later ones are only counted."""


def broken_item_error(where: str, exc: Exception, setting: str) -> DataError:
    """What stops a run or an evaluation pass at a broken item of ``where`` when ``setting``
    (``data.strict``, ``settings.strict``) is on."""
    return DataError(f"{where}: {exc} ({setting} is on; turn it off to skip and count such items)")


def warn_skipped(where: str, why: Any, skipped: int) -> None:
    """Warn about a broken item of ``where`` skipped (``skipped``: how many so far, this one
    included): the first :data:`WARNED_SKIPS` one by one, later ones only counted."""
    if skipped <= WARNED_SKIPS:
        more = "; later ones are only counted" if skipped == WARNED_SKIPS else ""
        warnings.warn(f"skipped a broken item of {where} ({skipped} so far{more}): {why}", stacklevel=3)


def is_score(label: Any) -> bool:
    """Whether an item's label is a score (a regression target: a fraction) rather than a class index."""
    return isinstance(label, Real) and not isinstance(label, Integral)


def has_label(item: Mapping[str, Any]) -> bool:
    """Whether an item has a label: a score, or a class index (a negative one means none, as the
    sources write it)."""
    label = item.get("label")
    return label is not None and (is_score(label) or label >= 0)


class PretrainingBatches(torch.utils.data.IterableDataset):
    """The batches of steps ``start .. stop - 1`` (see :meth:`window`), as dicts of tensors plus
    ``keys`` (the items' keys) and ``data_position`` (the lane's position after this batch, and
    its count of skipped items: what a checkpoint stores). Broken items are skipped and counted,
    unless ``strict``, which raises the item's :class:`DataError` instead.
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
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
        world_size: int = 1,
        strict: bool = False,
        task: str = "pretrain",
        answers: list[str] | None = None,
    ):
        if not sources:
            raise DataError("no data sources")
        self.names, self.sources = list(sources), sources
        self.weights = torch.tensor([float(getattr(source, "weight", 1.0)) for source in sources.values()])
        if not self.weights.sum() > 0:
            raise DataError("every data source has weight 0")
        self.batch_size, self.processor, self.tokenizer, self.text_length = batch_size, processor, tokenizer, text_length
        self.image_masking, self.text_masking = image_masking, text_masking
        self.itm_negative_prob, self.seed, self.rank, self.world_size, self.strict = itm_negative_prob, seed, rank, world_size, strict
        self.task, self.answers = task, answers
        if task == "vqa" and not answers:
            raise DataError("VQA batches need the model's answer vocabulary (model.answers)")
        self.start, self.stop, self.positions = 0, 1 << 62, {}
        self.truncations, self.cut = Truncations(), {}  # this reader's cut texts; the last batch's (see Truncations.note)

    def window(self, start: int, stop: int, positions: Mapping[int, dict] | None = None) -> "PretrainingBatches":
        """Build steps ``start .. stop - 1``, with lanes starting at ``positions`` (lane -> the
        ``data_position`` of its last batch; a fresh start without)."""
        self.start, self.stop, self.positions = start, stop, dict(positions or {})
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        lane = (self.start + worker) % workers
        position = self.positions.get(lane, {})
        state = {"lane": lane, "sources": dict(position.get("sources", {})), "skipped": position.get("skipped", 0)}
        streams: dict[str, Iterator] = {}
        self.truncations = Truncations()
        for step in range(self.start + worker, self.stop, workers):
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 1_009 + self.rank)
            name = self.names[int(torch.multinomial(self.weights, 1, generator=generator))]
            if name not in streams:
                streams[name] = self.sources[name].samples(self.rank * workers + lane, self.world_size * workers, self.seed,
                                                           state["sources"].get(name))  # fmt: skip
            items = self._items(name, streams[name], state)
            self.cut = {}
            batch = self.task_batch(items, generator)
            batch["keys"] = [item["key"] for item in items]
            # The cut texts travel with the position (from a worker too); loader_batches takes them out again.
            batch["data_position"] = {"lane": lane, "sources": dict(state["sources"]), "skipped": state["skipped"], **self.cut}
            yield batch

    def warn_truncations(self, truncations: Truncations) -> None:
        """Warn once about the texts cut to ``text_length`` that ``truncations`` added up."""
        message = truncations.warning("data", f"data.text_length ({self.text_length} tokens)",
                                      "raise data.text_length (up to model.text_encoder.max_position_embeddings) or shorten the texts")
        if message:
            warnings.warn(message, stacklevel=2)

    def task_batch(self, items: list[dict], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The batch ``data.task`` asks for: ``pretrain`` (masked, with ITM negatives), ``retrieval``
        (pairs with ITM negatives, nothing masked), ``classify`` (with ``labels``) or ``vqa`` (with
        ``answer_scores``)."""
        if self.task == "classify":
            return self.classification_batch(items)
        if self.task == "vqa":
            return self.vqa_batch(items)
        return self.pretraining_batch(items, generator, masked=self.task == "pretrain")

    def pretraining_batch(self, items: list[dict], generator: torch.Generator, masked: bool = True) -> dict[str, torch.Tensor]:
        """Pixels (with their codebook view) and, if ``masked``, masked patches; tokens and masked tokens; ITM labels."""
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
            batch.update(self.processor([item["image"] for item in items], generator=generator, codebook=masked))
            if masked:
                batch["bool_masked_pos"] = self.image_masking(len(items), generator)
        if has_text:
            encoded = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.text_length,
                                     return_special_tokens_mask=True, return_tensors="pt")  # fmt: skip
            self.cut = self.truncations.note(self.tokenizer, encoded, texts)
            batch["input_ids"], batch["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
            if masked:
                special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
                # Whole-word masking (the contract's optional ``whole_word``) also needs each word's first token.
                words = {"word_starts": word_starts(encoded)} if getattr(self.text_masking, "whole_word", False) else {}
                batch["input_ids_masked"], batch["mlm_labels"] = self.text_masking(encoded["input_ids"], special, generator, **words)
        return batch

    def classification_batch(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Images and/or texts (or text pairs) with their ``labels`` (no masking, no negatives, no
        augmentation): class indices as int64, or, when some label is a score (a fraction, see
        :mod:`flava_kit.data.sources.fields`), every label as float32, never cut to a class, for a regressor
        (``flava_classifier`` with ``num_classes: 1``; a classifier refuses them)."""
        if any(not has_label(item) for item in items):
            raise DataError("classification batches need items with a label (a class index >= 0, or a score); this source has "
                            "unlabelled items")  # fmt: skip
        labels = [item["label"] for item in items]
        batch = {"labels": torch.tensor(labels, dtype=torch.float32 if any(is_score(label) for label in labels) else torch.long)}
        if "image" in items[0]:
            batch.update(self.processor([item["image"] for item in items], codebook=False))
        if "text" in items[0]:
            batch.update(self.tokens(items))
        return batch

    def vqa_batch(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Images, questions and ``answer_scores`` ``[B, answers]``: each vocabulary answer's credit
        ``min(#annotators who gave it / 3, 1)`` (see :mod:`flava_kit.data.answers`)."""
        missing = [item["key"] for item in items if not ("image" in item and "text" in item and item.get("answers"))]
        if missing:
            raise DataError(f"VQA batches need items with an image, a question (text) and answers; item {missing[0]} lacks some")
        batch = dict(self.processor([item["image"] for item in items], codebook=False))
        batch.update(self.tokens(items))
        batch["answer_scores"] = answer_scores([item["answers"] for item in items], self.answers)
        return batch

    def tokens(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of the items' texts; items with a ``text_pair`` are
        encoded as BERT pairs (``[CLS] text [SEP] pair [SEP]``) with ``token_type_ids`` (0, then 1)."""
        texts, pairs = [item["text"] for item in items], [item.get("text_pair") for item in items]
        paired = any(pair is not None for pair in pairs)
        if paired and any(pair is None for pair in pairs):
            raise DataError("a batch mixes items with and without text_pair; a sentence-pair source needs a second text on every item")
        encoded = self.tokenizer(texts, pairs if paired else None, padding="max_length", truncation=True, max_length=self.text_length,
                                 return_tensors="pt", return_token_type_ids=paired)  # fmt: skip
        self.cut = self.truncations.note(self.tokenizer, encoded, texts, pairs if paired else None)
        keep = ("input_ids", "attention_mask", "token_type_ids") if paired else ("input_ids", "attention_mask")
        return {name: encoded[name] for name in keep}

    def _items(self, name: str, stream: Iterator, state: dict) -> list[dict]:
        """The next ``batch_size`` readable items of a source's lane, counting (or raising on) broken ones."""
        items, source, tries = [], self.sources[name], 0
        while len(items) < self.batch_size:
            tries += 1
            if tries > 100 * self.batch_size:  # bounded: a source of nothing but broken items stops
                raise DataError(f"data.sources.{name}: could not read {self.batch_size} items in {100 * self.batch_size} tries; "
                                "every item seems broken")  # fmt: skip
            raw, state["sources"][name] = next(stream)
            try:
                if isinstance(raw, Broken):
                    raise DataError(raw.message)
                items.append(source.decode(raw))
            except DataError as exc:
                if self.strict:
                    raise broken_item_error(f"data.sources.{name}", exc, "data.strict") from exc
                state["skipped"] += 1
                warn_skipped(f"data.sources.{name}", exc, state["skipped"])
        return items
