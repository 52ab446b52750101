"""A run directory's checkpoints as training writes them, read back (by training to resume, and by
evaluation and fine-tuning to use): ``checkpoints/latest`` names the newest ``step-N`` folder, which
holds ``model.safetensors`` and the resolved ``recipe.yaml``. A run with model selection
(``train.select``) also has ``checkpoints/best``: what it reports and what is used from it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from flava_kit.errors import CheckpointError

WEIGHTS, RECIPE, LATEST, BEST = "model.safetensors", "recipe.yaml", "latest", "best"


def is_run(path: str | Path) -> bool:
    """Whether ``path`` is a run directory (it has ``checkpoints/``) or one checkpoint of a run (weights and recipe)."""
    path = Path(path)
    return (path / "checkpoints").is_dir() or ((path / WEIGHTS).is_file() and (path / RECIPE).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint the ``latest`` pointer names, if any."""
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which does not exist")
    return path


def selected_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run is used by: ``checkpoints/best`` when model selection kept one, else the latest."""
    best = Path(run_dir) / "checkpoints" / BEST
    return best if (best / WEIGHTS).is_file() else latest_checkpoint(run_dir)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's weights, or an error naming the file."""
    try:
        return load_file(Path(path) / WEIGHTS)
    except Exception as exc:
        raise CheckpointError(f"{Path(path) / WEIGHTS}: corrupt, truncated or missing ({type(exc).__name__}: {exc})") from exc


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load a checkpoint's weights into ``model`` (strict)."""
    try:
        model.load_state_dict(read_weights(path), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{Path(path) / WEIGHTS} does not match the model: {exc}") from exc
