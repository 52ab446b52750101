"""A run directory back as what evaluation needs: the trained model, its data settings, its tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flava_kit.errors import FlavaKitError


def load_run(path: str) -> tuple[Any, Any, Any]:
    """(model on the run's device, its data section, its tokenizer) from a run's latest checkpoint."""
    from flava_kit.data.tokenizer import load_tokenizer
    from flava_kit.recipe import build, build_section, load_recipe
    from flava_kit.train.checkpoint import latest_checkpoint, load_weights
    from flava_kit.train.device import resolve_device

    run = Path(path)
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise FlavaKitError(f"{run}: no checkpoint to evaluate (expected {run / 'checkpoints'})")
    recipe = load_recipe(checkpoint / "recipe.yaml")
    model = build(recipe)
    data = build_section(recipe, "data").follow(model)
    load_weights(checkpoint, model)
    model.to(resolve_device(build_section(recipe, "train").device))  # the run's train.device
    # The tokenizer the run saved, rather than building (and re-saving) it again.
    tokenizer = load_tokenizer(run / "tokenizer") if (run / "tokenizer").is_dir() else data.tokenizer(None)
    return model, data, tokenizer
