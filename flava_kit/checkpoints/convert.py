"""``flava-kit convert SRC OUT``: an HF FLAVA directory (or HF Hub id), or a flava_kit run directory
(or one checkpoint of it), written as a complete HF FLAVA directory.

The weights, ``config.json`` and ``flava_kit_recipe.yaml`` come from :func:`save_pretrained`; the
tokenizer and the image processor's settings go beside them, so ``flava-kit eval OUT`` and
``transformers.FlavaModel.from_pretrained(OUT)`` both read OUT as it stands.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flava_kit.checkpoints.hf import from_hf_directory, not_standard, save_pretrained
from flava_kit.checkpoints.run_dir import is_run
from flava_kit.errors import CheckpointError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
                   "vocab.json", "merges.txt")  # fmt: skip
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def convert(source: str | Path, destination: str | Path) -> tuple[Any, list[str]]:
    """Write ``source`` into ``destination`` as an HF FLAVA directory; return the model written and
    notes for the user (what was left out)."""
    if is_run(source):
        return _convert_run(Path(source), Path(destination))
    path = Path(source)
    if path.is_dir() and not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a flava_kit run directory (no checkpoints/) nor an HF FLAVA directory (no config.json)")
    return _convert_hf(str(source), Path(destination))


def flava_part(model: Any) -> Any:
    """The FlavaModel inside a ``flava_pretraining``, ``flava_classifier`` or ``flava_vqa`` model, as a
    ``flava`` model of its own (built from its recipe, so :func:`save_pretrained` can write it)."""
    from flava_kit.recipe import build, to_recipe

    node = to_recipe(model)["model"]
    keys = ("image_encoder", "text_encoder", "fusion", "projection_dim", "logit_scale_init")
    part = build({"model": {"type": "flava", **{key: node[key] for key in keys if key in node}}})
    part.load_state_dict(model.flava.state_dict())
    return part


def _convert_hf(source: str, destination: Path) -> tuple[Any, list[str]]:
    """An HF FLAVA directory rewritten, its tokenizer and processor files copied as they are."""
    from flava_kit.hub import resolve

    directory = resolve(source, "convert")  # the one place this id becomes a path
    model = from_hf_directory(directory)
    save_pretrained(model, destination)
    carried = [name for name in TOKENIZER_FILES + PROCESSOR_FILES if (directory / name).is_file()]
    for name in carried:
        if (destination / name).resolve() != (directory / name).resolve():  # converting a directory into itself
            temporary = destination / f".{name}.tmp"
            shutil.copyfile(directory / name, temporary)
            temporary.replace(destination / name)
    notes = []
    if not set(carried) & set(TOKENIZER_FILES):
        notes.append(f"{source} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, vocab.txt): "
                     f"save one beside {destination} before flava-kit eval reads it")  # fmt: skip
    return model, notes


def _convert_run(source: Path, destination: Path) -> tuple[Any, list[str]]:
    """A run's selected checkpoint (or the checkpoint given), with the tokenizer and image settings it is used with."""
    from transformers import FlavaImageProcessor

    from flava_kit.checkpoints.loading import load_model

    loaded = load_model({"run": str(source)})
    model, notes = loaded.model, []
    reason = not_standard(model)
    if reason is not None and hasattr(model, "flava"):
        model = flava_part(model)
        notes.append(f"{reason}: wrote the FlavaModel part of {source} (encoders, fusion, projections); the rest stays in the run")
    save_pretrained(model, destination)  # raises where even the FlavaModel part is not standard (e.g. a timm tower)
    # The text length the run's inputs use: HF's tokenizer and flava-kit eval's HF loader read it back.
    loaded.tokenizer.model_max_length = loaded.text_length
    loaded.tokenizer.save_pretrained(str(destination))
    size = {"height": loaded.image_size, "width": loaded.image_size}  # our processor: resize, centre crop, normalise
    FlavaImageProcessor(size=size, crop_size=size, image_mean=list(loaded.mean), image_std=list(loaded.std)).save_pretrained(destination)
    return model, notes
