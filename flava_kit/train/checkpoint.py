"""Training checkpoints: weights (safetensors), optimizer/scheduler/RNG state, the data position, and the resolved recipe.

Each checkpoint is written into a temporary directory, fsynced (files and directory), and renamed
into place, and the ``latest`` pointer is replaced the same way: a crash or power loss mid-save
leaves the last good checkpoint loadable. A corrupt or truncated file is refused with an error naming it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from flava_kit.checkpoints.run_dir import LATEST, RECIPE, WEIGHTS, selected_checkpoint
from flava_kit.errors import CheckpointError

STATE = "trainer_state.pt"


def save_checkpoint(run_dir: Path, step: int, weights: dict, optimizer_state: dict, scheduler: Any, recipe: dict, keep: int,
                    data: dict | None = None) -> Path:  # fmt: skip
    """Write ``run_dir/checkpoints/step-NNNNNNNN`` atomically and keep only the newest ``keep``.

    ``weights`` and ``optimizer_state`` are full (unsharded) state dicts; ``data`` is the data
    pipeline's position (see :class:`~flava_kit.train.data_state.DataState`).
    """
    root = Path(run_dir) / "checkpoints"
    final, temporary = root / f"step-{step:08d}", root / f".step-{step:08d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, temporary / WEIGHTS)
    torch.save({"step": step, "optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(), "data": data,
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}, temporary / STATE)  # fmt: skip
    (temporary / RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    for name in (WEIGHTS, STATE, RECIPE, "."):  # on disk before the rename publishes them
        fsync(temporary / name)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    fsync(pointer)
    os.replace(pointer, root / LATEST)
    fsync(root)  # the renames themselves
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_state(path: Path) -> dict:
    """A checkpoint's trainer state (step, optimizer, scheduler, RNG), or an error naming the file."""
    try:
        state = torch.load(Path(path) / STATE, map_location="cpu", weights_only=True)
        return {"step": int(state["step"]), "optimizer": state["optimizer"], "scheduler": state["scheduler"], "rng": state["rng"],
                "cuda_rng": state.get("cuda_rng", []), "data": state.get("data")}  # fmt: skip
    except Exception as exc:
        raise CheckpointError(f"{Path(path) / STATE}: corrupt, truncated or missing ({type(exc).__name__}: {exc})") from exc


def load_matching_weights(path: str | Path, model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Load a run's (its selected checkpoint's: see :func:`selected_checkpoint`), a checkpoint's, or an
    HF FLAVA directory's (or hub id's) weights where names and shapes match ``model``'s.

    Returns (model keys left as they were, checkpoint keys not used). Nothing matching is an error.
    """
    from flava_kit.hub import is_hub_id

    path = Path(path)
    if (path / "config.json").is_file() or (not path.exists() and is_hub_id(str(path))):
        saved, where = _hf_weights(path), path
    else:
        checkpoint = selected_checkpoint(path) if (path / "checkpoints").is_dir() else path
        if checkpoint is None or not (checkpoint / WEIGHTS).is_file():
            raise CheckpointError(f"{path}: no checkpoint to start from (a run directory, a checkpoint directory or an HF FLAVA directory)")
        where = checkpoint / WEIGHTS
        try:
            saved = load_file(where)
        except Exception as exc:
            raise CheckpointError(f"{where}: corrupt, truncated or missing ({type(exc).__name__}: {exc})") from exc
    own = model.state_dict()
    matching = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise CheckpointError(f"{where}: no weight matches the model by name and shape")
    model.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching)), sorted(set(saved) - set(matching))


def _hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """An HF FLAVA directory's (or hub id's) weights in flava_kit's names, as the fine-tuning models
    name them: a ``FlavaModel`` under ``flava.``, a ``FlavaForPreTraining`` as it is."""
    from flava_kit.checkpoints.hf import from_pretrained
    from flava_kit.models.flava import FlavaModel

    built = from_pretrained(str(path))
    prefix = "flava." if isinstance(built, FlavaModel) else ""
    return {prefix + key: value for key, value in built.state_dict().items()}
