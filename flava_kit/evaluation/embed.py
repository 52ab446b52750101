"""Embeddings out: a model's L2-normalised image and/or text features, written with their keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.features import image_features, text_features


def embed(model: Any, processor: Any, tokenizer: Any, images: Sequence[Any] | None, texts: Sequence[str] | None,
          text_length: int = 32, batch_size: int = 64) -> dict[str, torch.Tensor]:  # fmt: skip
    """``{"image": [N, D], "text": [N, D]}`` for whichever inputs are given (batches, no_grad, the model's device)."""
    embeddings = {}
    if images is not None:
        embeddings["image"] = image_features(model, processor, images, batch_size=batch_size)
    if texts is not None:
        embeddings["text"] = text_features(model, tokenizer, texts, text_length, batch_size=batch_size)
    return embeddings


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
