"""Embeddings out: a model's L2-normalised image and/or text features, written with their keys."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from flava_kit.errors import FlavaKitError

SOURCES = {"images": ("image_folder", "root", {"image"}), "manifest": ("manifest", "path", {"image", "text"}),
           "texts": ("text_lines", "path", {"text"})}  # fmt: skip
"""What each ``flava-kit embed`` input is read as: (source type, its path parameter, the embeddings written)."""


def embed_items(model: str, out: str | Path, format: str = "safetensors", batch_size: int = 64, workers: int = 0,
                **given: str | None) -> tuple[list[Path], dict[str, tuple[int, ...]], int]:  # fmt: skip
    """Embed the one input given (``images``, ``manifest`` or ``texts``: see :data:`SOURCES`) with
    ``model`` (anything :func:`~flava_kit.checkpoints.loading.load_model` reads), streamed and cached
    as evaluation does; returns (files written, each embedding's shape, unreadable items skipped).
    A manifest whose lines list several captions gets a text row per caption, and ``text_keys.txt``
    (line ``i``: the item of text row ``i``) beside ``keys.txt``."""
    from flava_kit.checkpoints.loading import load_model
    from flava_kit.devices import resolve_device
    from flava_kit.evaluation.cache import default_cache_dir
    from flava_kit.evaluation.encode import dataset_features
    from flava_kit.recipe import build_node

    chosen = [name for name, value in given.items() if value is not None]
    if len(chosen) != 1 or chosen[0] not in SOURCES:
        raise FlavaKitError("give exactly one of: an image folder, a manifest, a text file")
    kind, parameter, modalities = SOURCES[chosen[0]]
    loaded = load_model(model, resolve_device("auto"))  # the model first: a wrong run directory is the first thing said
    node = {"type": kind, parameter: given[chosen[0]]}
    source = build_node(node, kind="source", path=chosen[0])
    features, _ = dataset_features(loaded, source, node, modalities, default_cache_dir(), batch_size, workers, where=chosen[0])
    keys = next(iter(features.values())).keys
    if not keys:
        raise FlavaKitError(f"{given[chosen[0]]}: no readable item ({next(iter(features.values())).skipped} unreadable)")
    embeddings = {modality: value.tensor("projected") for modality, value in features.items()}
    files = write_embeddings(embeddings, keys, out, format)
    if "text" in features and features["text"].keys != keys:  # several captions an item: a text row each, under its item's key
        files.append(Path(out) / "text_keys.txt")
        files[-1].write_text("".join(f"{key}\n" for key in features["text"].keys))
    return files, {name: tuple(value.shape) for name, value in embeddings.items()}, next(iter(features.values())).skipped


def write_embeddings(embeddings: dict[str, torch.Tensor], keys: Sequence[str], out: str | Path, format: str = "safetensors") -> list[Path]:
    """``out/embeddings.safetensors`` (tensors ``image``/``text``) or ``out/{image,text}_embeddings.npy``,
    and ``out/keys.txt`` (row ``i``'s key on line ``i``). Returns the files written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlavaKitError(f"{out}: cannot create the output directory ({exc.strerror})") from exc
    if format == "safetensors":
        from safetensors.torch import save_file

        files = [out / "embeddings.safetensors"]
        save_file({name: value.contiguous() for name, value in embeddings.items()}, files[0])
    else:
        import numpy as np

        files = []
        for name, value in embeddings.items():
            files.append(out / f"{name}_embeddings.npy")
            np.save(files[-1], value.numpy())
    (out / "keys.txt").write_text("".join(f"{key}\n" for key in keys))
    return [*files, out / "keys.txt"]
