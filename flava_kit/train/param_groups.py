"""What trains, and at what rate: ``train.freeze``, ``train.lr_multipliers``, ``train.layer_decay``
and ``train.lora`` applied to a model, and the AdamW parameter groups built from them.

Patterns are fnmatch patterns on ``model.named_parameters()`` names (``*`` crosses dots); a pattern
also matches everything below a module path (``flava.image_encoder`` is ``flava.image_encoder.*``).
Each parameter's learning rate is ``train.lr`` × its layer scale (``layer_decay``) × its multiplier
(the **last** ``lr_multipliers`` pattern in the recipe's order that matches it; 1 where none does).
Weight decay applies to weight matrices, never to norms, biases and other vectors or scalars.

Layer decay, as timm's ``param_groups_layer_decay`` groups a ViT: in each of the
image, text and fusion encoders, the embeddings (parameters outside the blocks named ``*token*`` or
``*embed*``: class and mask tokens, patch and position embeddings, the text embeddings' norm) are
layer 0, block ``i`` is layer ``i + 1`` and the rest (the final norm, the pooler) is the top, the
last block's layer; a parameter of layer ``id`` trains at ``decay ** (top - id)``. A module with
timm's ``group_matcher`` (a ``timm_vit``'s ViT) is grouped by timm itself. Everything outside the
three encoders (projections, heads, objectives, the logit scale) trains at the full rate.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Any, Iterable

import torch

from flava_kit.models.lora import ADAPTABLE, INSTALL_HINT, adaptable_modules, base_name

ENCODER_SLOTS = ("image_encoder", "text_encoder", "fusion")
_BLOCK = re.compile(r"(?:^|\.)(?:\w*layers|layer|blocks)\.(\d+)\.")  # layers.3. / image_layers.3. / layer.3. (HF) / blocks.3. (timm)
_EMBEDDING = re.compile(r"(?:^|\.)\w*(?:token|embed)\w*(?:\.|$)")


def matches(name: str, pattern: str) -> bool:
    """Whether parameter ``name`` (its name without adapters) matches ``pattern``, as itself or below a module path."""
    name = base_name(name)
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")


def apply_fine_tuning(model: torch.nn.Module, config: Any) -> None:
    """Add ``config.lora``'s adapters (freezing the base, except what its ``trainable`` names), then
    freeze what ``config.freeze`` names: call after the initial weights are loaded, before the
    optimizer is built. A model left with nothing to train is an error."""
    from flava_kit.errors import BuildError

    if config.lora is not None:
        from flava_kit.models.lora import add_adapters

        add_adapters(model, config.lora)
        for name, param in model.named_parameters():
            if any(matches(name, pattern) for pattern in config.lora.trainable):
                param.requires_grad_(True)
    for name, param in model.named_parameters():
        if any(matches(name, pattern) for pattern in config.freeze or ()):
            param.requires_grad_(False)
    if not any(param.requires_grad for param in model.parameters()):
        raise BuildError("train.freeze: every parameter of the model is frozen: nothing would train", "train.freeze")


def parameter_groups(model: torch.nn.Module, weight_decay: float, *, lr: float | None = None, lr_multipliers: dict[str, float] | None = None,
                     layer_decay: float | None = None) -> list[dict]:  # fmt: skip
    """AdamW parameter groups of ``model``'s trainable parameters (frozen ones get no group and no
    optimizer state): one per (rate scale, weight decay), each with ``lr_scale`` and, given ``lr``,
    ``lr`` = ``lr`` × ``lr_scale`` (LambdaLR then schedules each group from its own rate). Without
    multipliers or layer decay: the weight matrices (``weight_decay``), then everything else (none)."""
    scales = layer_scales(model, layer_decay) if layer_decay is not None else {}
    groups: dict[tuple[float, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (scales.get(name, 1.0) * multiplier(name, lr_multipliers), param.dim() >= 2)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if key[1] else 0.0, "lr_scale": key[0],
                           **({"lr": lr * key[0]} if lr is not None else {})}  # fmt: skip
        groups[key]["params"].append(param)
    # By rate (highest first), weight matrices before the rest: a plain model's two groups as they always were.
    return [groups[key] for key in sorted(groups, key=lambda key: (-key[0], not key[1]))]


def multiplier(name: str, lr_multipliers: dict[str, float] | None) -> float:
    """The factor of the last pattern of ``lr_multipliers`` that matches ``name``; 1 where none does."""
    factor = 1.0
    for pattern, value in (lr_multipliers or {}).items():
        if matches(name, pattern):
            factor = float(value)
    return factor


def layer_scales(model: torch.nn.Module, decay: float) -> dict[str, float]:
    """Each encoder parameter's rate scale under layer decay (see the module's docstring), by name in ``model``."""
    flava = getattr(model, "flava", model)
    prefixes = {id(module): name for name, module in model.named_modules()}
    scales: dict[str, float] = {}
    for slot in ENCODER_SLOTS:
        encoder = getattr(flava, slot, None)
        if not isinstance(encoder, torch.nn.Module):
            continue
        prefix = prefixes[id(encoder)] + "." if prefixes[id(encoder)] else ""
        layers = layer_ids(encoder)
        top = max(layers.values(), default=0)
        scales.update({prefix + name: decay ** (top - layer) for name, layer in layers.items()})
    return scales


def layer_ids(encoder: torch.nn.Module) -> dict[str, int]:
    """Layer id of each of ``encoder``'s parameters: 0 for the embeddings, ``i + 1`` for block ``i``,
    the top (the last block's id) for the rest; a timm model inside it by timm's own ``group_matcher``."""
    from timm.models import group_parameters

    ids: dict[str, int] = {}
    grouped: list[str] = []  # timm modules already grouped (the modules inside them are theirs)
    for name, module in encoder.named_modules():
        if callable(getattr(module, "group_matcher", None)) and not any(name.startswith(done) for done in grouped):
            prefix = name + "." if name else ""
            grouped.append(prefix)
            mapped = group_parameters(module, module.group_matcher(coarse=False), reverse=True)
            ids.update({prefix + key: value for key, value in mapped.items()})
    names = [name for name, _ in encoder.named_parameters()]
    blocks = {name: int(found.group(1)) + 1 for name in names if name not in ids and (found := _BLOCK.search(base_name(name)))}
    top = max([*ids.values(), *blocks.values()], default=0)
    for name in names:
        if name not in ids:
            ids[name] = blocks.get(name, 0 if _EMBEDDING.search(base_name(name)) else top)
    return ids


def pattern_problems(node: dict, path: tuple, recipe: dict) -> Iterable[tuple]:
    """``recipe_checks`` of ``train.freeze``, ``train.lr_multipliers`` and ``train.lora``: every pattern
    must match something in the model (built on the ``meta`` device), each miss reported at its
    recipe path with the closest parameter (or module) names; a freeze that leaves nothing to train too."""
    lora = node.get("lora")
    if not (node.get("freeze") or node.get("lr_multipliers") or lora):
        return
    if lora is not None:
        import importlib.util

        if importlib.util.find_spec("peft") is None:
            yield (path + ("lora",), "LoRA fine-tuning needs the peft package, which is not installed", INSTALL_HINT)
        if node.get("fsdp"):  # the FSDP path rebuilds the whole model from gathered weights, without adapters
            yield (path + ("lora",), "LoRA fine-tuning does not run under train.fsdp yet", "set train.fsdp=false (adapters are small: DDP suffices)")
    from flava_kit.recipe.building import build_node

    try:
        with torch.device("meta"):
            model = build_node(recipe["model"])
    except Exception:
        return  # the model's own problem is reported where it is built
    names = [name for name, _ in model.named_parameters()]
    checks = [(("freeze", i), pattern) for i, pattern in enumerate(node.get("freeze") or [])]
    checks += [(("lr_multipliers", pattern), pattern) for pattern in node.get("lr_multipliers") or {}]
    checks += [(("lora", "trainable", i), pattern) for i, pattern in enumerate((lora or {}).get("trainable") or [])]
    for where, pattern in checks:
        if not any(matches(name, pattern) for name in names):
            yield (path + where, f"'{pattern}' matches no parameter of the model", close_names(pattern, names))
    if lora is not None:
        layers = [name for name, module in model.named_modules() if isinstance(module, ADAPTABLE)]
        for i, pattern in enumerate(lora.get("target_modules") or []):
            if not adaptable_modules(model, pattern):
                yield (path + ("lora", "target_modules", i), f"'{pattern}' matches no linear, convolution or embedding layer of the model",
                       close_names(pattern, layers, parameters=False))  # fmt: skip
    elif node.get("freeze") and all(any(matches(name, pattern) for pattern in node["freeze"]) for name in names):
        yield (path + ("freeze",), "freezes every parameter of the model: nothing would train", "freeze less, or train adapters (train.lora)")


def close_names(pattern: str, names: list[str], parameters: bool = True) -> str:
    """A hint: ``pattern`` with its misspelt parts corrected where that matches something, else the
    module paths closest to it, else the model's top-level parts."""
    segments = {segment for name in names for segment in name.split(".")}
    fixed = ".".join(part if "*" in part or part in segments else next(iter(difflib.get_close_matches(part, segments, n=1)), part)
                     for part in pattern.split("."))  # fmt: skip
    if fixed != pattern and any(fnmatch.fnmatchcase(name, fixed) or fnmatch.fnmatchcase(name, fixed + ".*") for name in names):
        return f"did you mean '{fixed}'?"
    prefixes = sorted({".".join(name.split(".")[:depth]) for name in names for depth in range(1, name.count(".") + 2)})
    literal = pattern.replace(".*", "").replace("*", "").strip(".")
    close = difflib.get_close_matches(literal, prefixes, n=3, cutoff=0.6)
    what = "parameter names (model.named_parameters())" if parameters else "layer names (model.named_modules())"
    if close:
        return f"close {what}: {', '.join(close)}"
    parts = sorted({".".join(name.split(".")[:2]) for name in names})
    return f"{what} start with: {', '.join(parts[:12])}{' ...' if len(parts) > 12 else ''}"
