"""A model's features of a dataset: cached ones read back, missing ones computed in one streamed pass."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from flava_kit.checkpoints.loading import LoadedModel
from flava_kit.data.batches import loader_batches, warn_skipped
from flava_kit.data.tokenizer import Truncations
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.cache import EntryWriter, cache_key, load_entry
from flava_kit.evaluation.passes import EncodingInputs, encoding_batches
from flava_kit.evaluation.tasks.base import Features

LOGIT_KINDS = ("classifier", "vqa")
"""Model kinds whose features are their own ``logits`` (a fine-tuned head's), not encoder features."""


def _flava(model: Any) -> Any:
    return getattr(model, "flava", model)  # FlavaForPreTraining holds its FlavaModel as .flava


@torch.no_grad()
def image_representations(loaded: LoadedModel, pixel_values: torch.Tensor) -> dict[str, np.ndarray]:
    """``projected`` (normalised contrastive projection) and ``cls`` (the image encoder's [CLS] before
    projection) of a batch."""
    device = next(loaded.model.parameters()).device
    out = _flava(loaded.model)(pixel_values=pixel_values.to(device))
    return {"projected": out.image_features.float().cpu().numpy(), "cls": out.image_embeddings[:, 0].float().cpu().numpy()}


@torch.no_grad()
def text_representations(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         token_type_ids: torch.Tensor | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``projected`` and ``cls`` text features of a batch of token ids (``token_type_ids`` for text pairs)."""
    device = next(loaded.model.parameters()).device
    types = None if token_type_ids is None else token_type_ids.to(device)
    out = _flava(loaded.model)(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), token_type_ids=types)
    return {"projected": out.text_features.float().cpu().numpy(), "cls": out.text_embeddings[:, 0].float().cpu().numpy()}


@torch.no_grad()
def model_logits(loaded: LoadedModel, batch: dict) -> dict[str, np.ndarray]:
    """A fine-tuned classifier's or VQA model's ``logits`` of a batch, from the inputs it reads."""
    device = next(loaded.model.parameters()).device
    inputs = {k: batch[k].to(device) for k in ("pixel_values", "input_ids", "attention_mask", "token_type_ids") if k in batch}
    return {"logits": loaded.model(**inputs).logits.float().cpu().numpy()}


def input_modalities(loaded: LoadedModel, modalities: set[str]) -> set[str]:
    """What a pass must read to compute ``modalities``: a classifier reads what its head's modality
    needs, a VQA model an image and its question."""
    if loaded.kind == "vqa":
        return {"image", "text"}
    if loaded.kind != "classifier":
        return set(modalities)
    return {"image": {"image"}, "text": {"text"}}.get(loaded.model.modality, {"image", "text"})


def itm_head(model: torch.nn.Module) -> Any:
    """The model's image-text matching head (a :class:`~flava_kit.heads.ITMHead`, as a pretraining
    model's ``itm`` objective holds), or None."""
    from flava_kit.heads import ITMHead

    return next((module for module in model.modules() if isinstance(module, ITMHead)), None)


@torch.no_grad()
def itm_scores(loaded: LoadedModel, head: Any, pixel_values: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """``[B]`` log-probabilities that image ``b`` and text ``b`` are a pair, from ``head`` on their
    fused [CLS_M] (found through the fusion's layout, as the ITM objective reads it)."""
    device = next(loaded.model.parameters()).device
    flava = _flava(loaded.model)
    out = flava(pixel_values.to(device), input_ids.to(device), attention_mask.to(device))
    layout = flava.fusion.layout(out.image_embeddings.shape[1], out.text_embeddings.shape[1])
    return head(out.multimodal_embeddings[:, layout.cls_m :]).float().log_softmax(-1)[:, 1].cpu()


class PairScorer:
    """ITM scores of chosen (image row, text row) pairs of ``source``, whose rows are ``features``'
    (see :func:`itm_scores`), ``batch_size`` pairs per forward pass: what the runner's
    :data:`~flava_kit.evaluation.tasks.base.ScorePairs` calls for one dataset. Items are read again by
    index, so the source needs random access and every item must have been readable (row ``i`` is
    item ``i``). A call reads each image it needs once; a text's tokens are kept across calls (they
    are small), so calls whose pairs are grouped by image read each item about once in all."""

    def __init__(self, loaded: LoadedModel, source: Any, features: Features, batch_size: int = 64, where: str = "data"):
        self.head = itm_head(loaded.model)
        if self.head is None:
            raise FlavaKitError("re-ranking needs an image-text matching head (flava_kit.heads.ITMHead, as in a pretraining model's "
                                "itm objective); this model has none")  # fmt: skip
        if not (hasattr(source, "read") and hasattr(source, "__len__")):
            raise FlavaKitError(f"{where}: re-ranking reads items again by row, but a {type(source).__name__} source has no random "
                                "access (read); use a manifest, an HF dataset or a folder")  # fmt: skip
        if features.skipped or len(features) != len(source):
            raise FlavaKitError(f"{where}: re-ranking reads items by row, but {len(source) - len(features)} of {len(source)} items "
                                "could not be read")  # fmt: skip
        self.loaded, self.source, self.keys, self.batch_size, self.where = loaded, source, features.keys, batch_size, where
        self.processor = loaded.processor()
        self.tokens: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # text row -> (input_ids, attention_mask)

    def __call__(self, image_rows: Sequence[int], text_rows: Sequence[int]) -> torch.Tensor:
        """``[P]`` scores, one per pair."""
        image_rows, text_rows = [int(r) for r in image_rows], [int(r) for r in text_rows]
        if len(image_rows) != len(text_rows):
            raise FlavaKitError(f"score_pairs: {len(image_rows)} image rows but {len(text_rows)} text rows")
        images = {}
        for row in sorted(set(image_rows) | (set(text_rows) - set(self.tokens))):
            item = self._read(row)
            images[row] = item["image"]
            if row not in self.tokens:
                encoded = self.loaded.tokenizer(item["text"], padding="max_length", truncation=True, max_length=self.loaded.text_length,
                                                return_tensors="pt")  # fmt: skip
                self.tokens[row] = (encoded["input_ids"][0], encoded["attention_mask"][0])
        scores = []
        for start in range(0, len(image_rows), self.batch_size):
            texts = text_rows[start : start + self.batch_size]
            pixels = self.processor([images[row] for row in image_rows[start : start + self.batch_size]], codebook=False)["pixel_values"]
            input_ids, attention_mask = (torch.stack([self.tokens[row][part] for row in texts]) for part in (0, 1))
            scores.append(itm_scores(self.loaded, self.head, pixels, input_ids, attention_mask))
        return torch.cat(scores) if scores else torch.zeros(0)

    def _read(self, row: int) -> dict:
        item = self.source.decode(row)
        if str(item["key"]) != self.keys[row]:  # the features' rows are not the source's items: never score a wrong pair
            raise FlavaKitError(f"{self.where}: item {row} is {item['key']}, but its features are {self.keys[row]}'s")
        return item


def encode_texts(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """``[N, D]`` normalised text features of a few texts (class prompts), not cached."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        encoded = loaded.tokenizer(list(texts[start : start + batch_size]), padding="max_length", truncation=True,
                                   max_length=loaded.text_length, return_tensors="pt")  # fmt: skip
        chunks.append(torch.from_numpy(text_representations(loaded, encoded["input_ids"], encoded["attention_mask"])["projected"]))
    return torch.cat(chunks)


def dataset_features(loaded: LoadedModel, source: Any, source_node: dict, modalities: set[str], cache: Path, batch_size: int = 64,
                     workers: int = 0, where: str = "data", strict: bool = False) -> tuple[dict[str, Features], dict[str, int]]:  # fmt: skip
    """``{modality: Features}`` of ``source`` (whose resolved recipe node is ``source_node``), and how
    many items each modality had to encode (0: read from the cache). Missing modalities are computed
    together in one pass, resuming an interrupted one. A fine-tuned classifier's or VQA model's
    features are its ``logits``, under the modality ``image`` whatever inputs it reads; items' VQA
    ``answers`` are stored with the features. A broken item is warned about and skipped, or with
    ``strict`` stops the pass naming it (cached features with skipped items are then computed
    again, to find it); texts cut to the model's text length are warned about once. Items with
    several ``captions`` get a text row per caption, in a row under the item's key."""
    keys = {m: cache_key(loaded.digest(), loaded.settings(), source_node, m) for m in sorted(modalities)}
    found = {m: load_entry(cache, key) for m, key in keys.items()}
    missing = {m for m, entry in found.items() if entry is None or (strict and entry.skipped)}
    encoded = {m: 0 for m in modalities}
    if missing:
        writers = {m: EntryWriter(cache, keys[m]) for m in missing}
        done = set.intersection(*(w.already for w in writers.values()))  # what an interrupted pass wrote for every modality
        inputs = EncodingInputs(source, input_modalities(loaded, missing), loaded.processor(), loaded.tokenizer, loaded.text_length,
                                batch_size, done, where, strict)  # fmt: skip
        try:
            total = len(source)
        except TypeError:  # no length, or one unknown (shards without a sizes.json: CLIP_benchmark's)
            total = None
        truncations, skipped = Truncations(), 0
        try:
            with tqdm(total=total, initial=len(done), desc=f"encoding {where}", unit="item", disable=None, leave=False) as bar:
                for batch in loader_batches(encoding_batches(inputs, workers)):
                    for why in batch.pop("broken"):  # warned here, not in a worker: what a worker prints may go nowhere
                        skipped += 1
                        warn_skipped(where, why, skipped)
                    truncations.take(batch, len(batch["orders"]))
                    _write(loaded, batch, writers, encoded)
                    bar.update(len(batch["orders"]) + len(batch["skipped"]))
        except BaseException:  # interrupted (Ctrl-C, SIGTERM, an error): keep what is done for the next call
            for writer in writers.values():
                writer.flush()
            raise
        message = truncations.warning(where, f"the model's {loaded.text_length} text positions",
                                      "shorten the texts, or evaluate a model with more text positions")
        if message:
            warnings.warn(message, stacklevel=2)
        for modality, writer in writers.items():
            found[modality] = writer.finish()
    return {m: entry for m, entry in found.items() if entry is not None}, encoded


def _write(loaded: LoadedModel, batch: dict, writers: dict, encoded: dict) -> None:
    """One batch's features of every modality being computed, handed to its entry's writer."""
    orders, skipped, labels = batch["orders"].numpy(), batch["skipped"].numpy(), batch["labels"].numpy()
    captions = batch.get("text_rows")  # rows per item, where items have several captions
    if captions is not None and loaded.kind in LOGIT_KINDS and bool((captions != 1).any()):
        raise FlavaKitError(f"a fine-tuned {loaded.kind} model reads one text per item, but items here have several captions")
    for modality, writer in writers.items():
        representations = {}
        if len(orders):
            representations = (model_logits(loaded, batch) if loaded.kind in LOGIT_KINDS
                                else image_representations(loaded, batch["pixel_values"]) if modality == "image"
                                else text_representations(loaded, batch["input_ids"], batch["attention_mask"],
                                                          batch.get("token_type_ids")))  # fmt: skip
        rows, keys, row_labels, answers = orders, batch["keys"], labels, batch.get("answers")
        if modality == "text" and captions is not None and loaded.kind not in LOGIT_KINDS:  # a row per caption, under its item's order and key
            counts = captions.numpy()
            rows, row_labels = np.repeat(orders, counts, axis=0), np.repeat(labels, counts)
            keys = [key for key, count in zip(keys, counts) for _ in range(count)]
            answers = None if answers is None else [each for each, count in zip(answers, counts) for _ in range(count)]
        writer.add(rows, keys, row_labels, representations, skipped, answers)
        encoded[modality] += len(orders)
