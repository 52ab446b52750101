"""A model's features of a dataset: cached ones read back, missing ones computed in one streamed pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from flava_kit.checkpoints.loading import LoadedModel
from flava_kit.evaluation.cache import EntryWriter, cache_key, load_entry
from flava_kit.evaluation.passes import EncodingInputs, encoding_batches
from flava_kit.evaluation.tasks.base import Features


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
def text_representations(loaded: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, np.ndarray]:
    """``projected`` and ``cls`` text features of a batch of token ids."""
    device = next(loaded.model.parameters()).device
    out = _flava(loaded.model)(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
    return {"projected": out.text_features.float().cpu().numpy(), "cls": out.text_embeddings[:, 0].float().cpu().numpy()}


@torch.no_grad()
def classifier_logits(loaded: LoadedModel, batch: dict) -> dict[str, np.ndarray]:
    """A fine-tuned classifier's ``logits`` of a batch, from the inputs its modality reads."""
    device = next(loaded.model.parameters()).device
    inputs = {k: batch[k].to(device) for k in ("pixel_values", "input_ids", "attention_mask") if k in batch}
    return {"logits": loaded.model(**inputs).logits.float().cpu().numpy()}


def input_modalities(loaded: LoadedModel, modalities: set[str]) -> set[str]:
    """What a pass must read to compute ``modalities``: a classifier reads what its head's modality needs."""
    if loaded.kind != "classifier":
        return set(modalities)
    return {"image": {"image"}, "text": {"text"}}.get(loaded.model.modality, {"image", "text"})


def encode_texts(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """``[N, D]`` normalised text features of a few texts (class prompts), not cached."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        encoded = loaded.tokenizer(list(texts[start : start + batch_size]), padding="max_length", truncation=True,
                                   max_length=loaded.text_length, return_tensors="pt")  # fmt: skip
        chunks.append(torch.from_numpy(text_representations(loaded, encoded["input_ids"], encoded["attention_mask"])["projected"]))
    return torch.cat(chunks)


def dataset_features(loaded: LoadedModel, source: Any, source_node: dict, modalities: set[str], cache: Path, batch_size: int = 64,
                     workers: int = 0, where: str = "data") -> tuple[dict[str, Features], dict[str, int]]:  # fmt: skip
    """``{modality: Features}`` of ``source`` (whose resolved recipe node is ``source_node``), and how
    many items each modality had to encode (0: read from the cache). Missing modalities are computed
    together in one pass, resuming an interrupted one. A fine-tuned classifier's features are its
    ``logits``, under the modality ``image`` whatever inputs it reads."""
    keys = {m: cache_key(loaded.digest(), loaded.settings(), source_node, m) for m in sorted(modalities)}
    found = {m: load_entry(cache, key) for m, key in keys.items()}
    missing = {m for m, entry in found.items() if entry is None}
    encoded = {m: 0 for m in modalities}
    if missing:
        writers = {m: EntryWriter(cache, keys[m]) for m in missing}
        done = set.intersection(*(w.already for w in writers.values()))  # what an interrupted pass wrote for every modality
        inputs = EncodingInputs(source, input_modalities(loaded, missing), loaded.processor(), loaded.tokenizer, loaded.text_length, batch_size, done, where)
        total = len(source) if hasattr(source, "__len__") else None
        try:
            with tqdm(total=total, initial=len(done), desc=f"encoding {where}", unit="item", disable=None, leave=False) as bar:
                for batch in encoding_batches(inputs, workers):
                    _write(loaded, batch, writers, encoded)
                    bar.update(len(batch["orders"]) + len(batch["skipped"]))
        except BaseException:  # interrupted (Ctrl-C, SIGTERM, an error): keep what is done for the next call
            for writer in writers.values():
                writer.flush()
            raise
        for modality, writer in writers.items():
            found[modality] = writer.finish()
    return {m: entry for m, entry in found.items() if entry is not None}, encoded


def _write(loaded: LoadedModel, batch: dict, writers: dict, encoded: dict) -> None:
    """One batch's features of every modality being computed, handed to its entry's writer."""
    orders, skipped, labels = batch["orders"].numpy(), batch["skipped"].numpy(), batch["labels"].numpy()
    for modality, writer in writers.items():
        representations = {}
        if len(orders):
            representations = (classifier_logits(loaded, batch) if loaded.kind == "classifier"
                                else image_representations(loaded, batch["pixel_values"]) if modality == "image"
                                else text_representations(loaded, batch["input_ids"], batch["attention_mask"]))  # fmt: skip
        writer.add(orders, batch["keys"], labels, representations, skipped)
        encoded[modality] += len(orders)
