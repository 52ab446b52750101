"""LoRA fine-tuning through ``peft`` (the ``lora`` extra): ``train.lora`` adds low-rank adapters to
the model's linear layers, only the adapters (and what ``trainable`` names) train, and a run read
back for use has them merged into the base weights.

peft owns the adapters: :func:`add_adapters` is ``peft.inject_adapter_in_model`` with a
``LoraConfig`` whose ``target_modules`` are the exact module names the recipe's patterns match,
and :func:`merge_adapters` is each adapted layer's own ``merge()`` (W + B·A·alpha/rank) followed by
putting its base layer back, what peft's ``merge_and_unload`` does for a ``PeftModel``. An adapted
layer keeps its base weight as ``NAME.base_layer.weight`` beside ``NAME.lora_A.default.weight``
and ``NAME.lora_B.default.weight``: the names a LoRA run's checkpoints hold.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field

from flava_kit.constraints import Probability, Size

# The layers peft's LoRA adapts (a pattern matching other modules matches nothing adaptable).
ADAPTABLE = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding)
INSTALL_HINT = "pip install 'flava_kit[lora]' (peft)"


class LoraSettings(BaseModel):
    """``train.lora``: low-rank adapters of ``rank`` (scaled by ``alpha / rank``, with ``dropout`` on
    their input) on every linear, convolution or embedding layer whose module name matches one of
    ``target_modules`` (fnmatch patterns on ``model.named_modules()`` names, e.g.
    ``flava.*.attn.qkv``). The base model is frozen, as peft does; parameters matching
    ``trainable`` (patterns on parameter names, e.g. a new classifier's ``head.*``) train too."""

    model_config = ConfigDict(extra="forbid")

    target_modules: Annotated[list[str], Field(min_length=1)]
    rank: Size = 8
    alpha: Annotated[float, Field(gt=0.0)] = 16.0
    dropout: Probability = 0.0
    trainable: list[str] = []


def settings_of(value: LoraSettings | dict) -> LoraSettings:
    """``value`` as :class:`LoraSettings` (a recipe's ``train.lora`` mapping, or the settings themselves)."""
    return value if isinstance(value, LoraSettings) else LoraSettings.model_validate(value)


def adaptable_modules(model: torch.nn.Module, pattern: str) -> list[str]:
    """Names of ``model``'s layers LoRA can adapt that ``pattern`` matches (the module itself or, as a prefix, its children)."""
    return [name for name, module in model.named_modules()
            if isinstance(module, ADAPTABLE) and (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*"))]  # fmt: skip


def add_adapters(model: torch.nn.Module, lora: LoraSettings | dict) -> list[str]:
    """Inject LoRA adapters into ``model`` in place (base weights frozen); return the adapted module names."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        from flava_kit.errors import BuildError

        raise BuildError(f"train.lora needs peft: {INSTALL_HINT}", "train.lora") from None
    lora = settings_of(lora)
    targets = sorted({name for pattern in lora.target_modules for name in adaptable_modules(model, pattern)})
    if not targets:
        from flava_kit.errors import BuildError

        raise BuildError(f"train.lora.target_modules {lora.target_modules}: no linear, convolution or embedding layer matches", "train.lora.target_modules")
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
    inject_adapter_in_model(config, model)
    return targets


def merge_adapters(model: torch.nn.Module) -> torch.nn.Module:
    """Merge every LoRA adapter of ``model`` into its base layer and put the base layer back, so
    ``model`` is the plain model again (its original parameter names, every parameter trainable)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapted = [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, module in adapted:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def base_name(name: str) -> str:
    """A parameter's name as the model without adapters calls it (``qkv.base_layer.weight`` -> ``qkv.weight``):
    what ``freeze``, ``lr_multipliers`` and ``trainable`` patterns match."""
    return name.replace(".base_layer.", ".")

