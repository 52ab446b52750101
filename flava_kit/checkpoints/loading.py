"""A model read back for use (evaluation, embedding, fine-tuning): a run directory, an HF FLAVA
directory, a recipe plus a weights file, or a shipped recipe, each with the image and text settings
its inputs need. Training and evaluation both read models through here, so neither imports the other.

A LoRA run (``train.lora``) is read back with its adapters merged into the base weights: a plain
model, which ``flava-kit convert`` exports as it is.

A *reference* is a string (a run directory, one checkpoint of a run (``RUN/checkpoints/best``), an HF FLAVA directory or HF Hub id such as
``facebook/flava-full``, or a recipe path or shipped name: told apart by what the path holds) or a mapping with exactly one of ``run``, ``hf`` or
``recipe``, and optionally ``weights`` (a safetensors file in flava_kit's names, with ``recipe``),
``tokenizer`` (a local tokenizer directory or an HF Hub id) and ``overrides`` (``a.b=value`` for ``recipe``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from flava_kit.data.processor import CLIP_MEAN, CLIP_STD
from flava_kit.errors import CheckpointError, FlavaKitError



@dataclass
class LoadedModel:
    """A model ready to encode: ``model`` (in eval mode), its ``tokenizer``, the image ``image_size``,
    ``mean`` and ``std`` and the ``text_length`` its inputs use, ``kind`` (``flava``,
    ``classifier`` for a fine-tuned ``flava_classifier``, ``vqa`` for ``flava_vqa``) and ``source`` (what it was read from)."""

    model: torch.nn.Module
    tokenizer: Any
    image_size: int
    text_length: int
    source: str
    kind: str = "flava"
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    _digest: str | None = field(default=None, repr=False)

    def processor(self) -> Any:
        """The image processor for this model's inputs (no codebook pixels, no augmentation)."""
        from flava_kit.data.processor import ImageProcessor

        return ImageProcessor(self.image_size, None, mean=self.mean, std=self.std)

    def digest(self) -> str:
        """A hash of every weight (names, dtypes, shapes and bytes): what the feature cache is keyed on."""
        if self._digest is None:
            hasher = hashlib.blake2b(digest_size=16)
            for name, tensor in sorted(self.model.state_dict().items()):
                value = tensor.detach().cpu().contiguous()
                hasher.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
                hasher.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
            self._digest = hasher.hexdigest()
        return self._digest

    def settings(self) -> dict:
        """The input settings that change features (part of the feature cache's key)."""
        vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()))
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std), "text_length": self.text_length,
                "tokenizer": hashlib.blake2b(vocab.encode(), digest_size=8).hexdigest(), "kind": self.kind}  # fmt: skip


def load_model(reference: str | dict, device: torch.device | str = "cpu") -> LoadedModel:
    """Read ``reference`` (see the module's docstring) onto ``device``, in eval mode."""
    spec = _spec(reference)
    if "run" in spec:
        loaded = _from_run(Path(spec["run"]))
    elif "hf" in spec:
        from flava_kit.hub import resolve

        loaded = _from_hf(resolve(spec["hf"], "model"))  # the one place this id becomes a path
    else:
        loaded = _from_recipe(spec["recipe"], spec.get("weights"), list(spec.get("overrides") or []))
    if spec.get("tokenizer"):
        from flava_kit.data.tokenizer import load_tokenizer

        loaded.tokenizer = load_tokenizer(spec["tokenizer"])
    loaded.model.to(device).eval()
    return loaded


def _spec(reference: str | dict) -> dict:
    if isinstance(reference, dict):
        given = [k for k in ("run", "hf", "recipe") if reference.get(k)]
        if len(given) != 1:
            raise FlavaKitError(f"model {reference}: give exactly one of run, hf or recipe")
        if reference.get("weights") and given[0] != "recipe":
            raise FlavaKitError(f"model {reference}: weights go with recipe (a run or an HF directory holds its own)")
        return reference
    from flava_kit.hub import is_hub_id
    from flava_kit.recipe.loading import find_recipe

    from flava_kit.checkpoints.run_dir import is_run

    path = Path(reference)
    if is_run(path):
        return {"run": reference}  # a run directory (its latest checkpoint), or one checkpoint of it
    if (path / "config.json").is_file() or (is_hub_id(reference) and find_recipe(reference, None) is None):
        return {"hf": reference}
    if path.is_dir():
        raise FlavaKitError(f"{path}: no checkpoint to evaluate (no {path / 'checkpoints'}), and not an HF FLAVA directory (no config.json)")
    return {"recipe": reference}


def model_input_sizes(model: torch.nn.Module) -> tuple[int, int]:
    """(image size, text length) a model takes: its image encoder's input size (224 without one) and
    its text encoder's position limit (77 without one). Training's data settings follow the same."""
    flava = getattr(model, "flava", model)
    image_size = getattr(getattr(flava, "image_encoder", None), "image_size", None) or 224
    text_length = getattr(getattr(flava, "text_encoder", None), "max_position_embeddings", None) or 77
    return int(image_size), int(text_length)


def _settings(recipe: dict, model: torch.nn.Module) -> tuple[int, int]:
    """(image size, text length): the recipe's data settings, else what the model takes (as training does)."""
    data = recipe.get("data") or {}
    image_size, text_length = model_input_sizes(model)
    return int(data.get("image_size") or image_size), int(data.get("text_length") or text_length)


def _kind(model: torch.nn.Module) -> str:
    """``vqa`` (a model with an answer vocabulary), ``classifier`` (a head over one modality's [CLS]) or ``flava``."""
    if hasattr(model, "answers"):
        return "vqa"
    return "classifier" if hasattr(model, "modality") and hasattr(model, "num_classes") else "flava"


def _from_run(run: Path) -> LoadedModel:
    from flava_kit.checkpoints.run_dir import RECIPE, WEIGHTS, load_weights, selected_checkpoint
    from flava_kit.data.tokenizer import run_tokenizer, tokenizer_from_directory
    from flava_kit.recipe import build, load_recipe

    if (run / WEIGHTS).is_file():  # one checkpoint (RUN/checkpoints/step-N or .../best): the run is two levels up
        checkpoint, run = run, run.parent.parent
    else:
        checkpoint = selected_checkpoint(run)
    if checkpoint is None:
        raise CheckpointError(f"{run}: no checkpoint to evaluate (expected {run / 'checkpoints'})")
    recipe = load_recipe(checkpoint / RECIPE)
    model = build(recipe)
    lora = (recipe.data.get("train") or {}).get("lora")
    if lora is not None:  # a LoRA run's checkpoints hold the base weights and the adapters: merged, a plain model
        from flava_kit.models.lora import add_adapters, merge_adapters

        add_adapters(model, lora)
        load_weights(checkpoint, model)
        merge_adapters(model)
    else:
        load_weights(checkpoint, model)
    # The tokenizer the run saved, rather than building (and re-saving) it again.
    tokenizer = tokenizer_from_directory(run / "tokenizer") if (run / "tokenizer").is_dir() else run_tokenizer((recipe.data.get("data") or {}).get("tokenizer"))
    return LoadedModel(model, tokenizer, *_settings(recipe.data, model), source=f"run {run} ({checkpoint.name})", kind=_kind(model))


def _from_hf(directory: Path) -> LoadedModel:
    """An HF FLAVA directory (local: a hub id is resolved before): its FlavaModel part, its own
    tokenizer and image processor settings."""
    from transformers import AutoTokenizer

    from flava_kit.checkpoints.hf import from_hf_directory

    model = from_hf_directory(directory, model="flava")
    if not any((directory / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise CheckpointError(f"{directory}: no tokenizer files (tokenizer.json or vocab.txt); save the processor's tokenizer beside the model")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    image_size, mean, std = model.image_encoder.image_size, CLIP_MEAN, CLIP_STD
    processor_file = directory / "preprocessor_config.json"
    if processor_file.is_file():  # FlavaImageProcessor's settings: the crop it feeds the model, its normalisation
        config = json.loads(processor_file.read_text())
        crop = config.get("crop_size") or config.get("size") or {}
        image_size = int(crop.get("height", image_size) if isinstance(crop, dict) else crop)
        mean, std = tuple(config.get("image_mean", mean)), tuple(config.get("image_std", std))
    text_length = min(getattr(tokenizer, "model_max_length", 77) or 77, model.text_encoder.max_position_embeddings, 512)
    return LoadedModel(model, tokenizer, image_size, int(text_length), source=f"HF FLAVA {directory}", mean=mean, std=std)


def _from_recipe(recipe_ref: str, weights: str | None, overrides: list[str]) -> LoadedModel:
    """A recipe's model with ``weights`` (flava_kit's names; strict), or its initial weights (seed 0) without."""
    from safetensors.torch import load_file

    from flava_kit.data.tokenizer import run_tokenizer
    from flava_kit.recipe import build, load_recipe

    recipe = load_recipe(recipe_ref, overrides)
    torch.manual_seed((recipe.data.get("data") or {}).get("seed", 0))
    model = build(recipe)
    if weights:
        try:
            model.load_state_dict(load_file(weights), strict=True)
        except Exception as exc:
            raise CheckpointError(f"{weights}: cannot load into recipe {recipe_ref}'s model ({type(exc).__name__}: {exc})") from exc
    tokenizer = run_tokenizer((recipe.data.get("data") or {}).get("tokenizer"))
    what = f"recipe {recipe_ref}" + (f" + {weights}" if weights else " (initial weights)")
    return LoadedModel(model, tokenizer, *_settings(recipe.data, model), source=what, kind=_kind(model))
