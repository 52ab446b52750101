"""Name maps between flava_kit's state dicts and other FLAVA implementations', and strict loading.

A :class:`Layout` lists, for one foreign format, how our parameter names translate into its
names. :func:`foreign_names` applies it (our fused q/k/v becomes three tensors), and
:func:`load_mapped` copies a foreign state dict in, refusing missing, unexpected or mis-shaped keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from flava_kit.errors import CheckpointError

_LAYER_KEY = re.compile(r"encoder\.layers\.(\d+)\.(.*)")


@dataclass(frozen=True)
class Layout:
    """How one foreign format names FLAVA's parameters (prefix pairs: ours -> theirs)."""

    flava_prefix: str  # where the FlavaModel part sits in a pretraining state dict
    components: dict[str, str]  # our top-level attribute -> theirs
    embeddings: dict[str, list[tuple[str, str]]]  # per component (ours), inside it
    common: list[tuple[str, str]]  # inside any component, after the embeddings
    layer: list[tuple[str, str]]  # inside one transformer layer
    qkv: tuple[str, str, str]  # their query/key/value prefixes inside a layer
    layer_path: str  # their path of the layer list inside a component
    heads: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)  # objective -> (prefix, pairs)
    codebook: Callable[[str], str] | None = None  # our key inside the codebook -> theirs (full name)
    logit_scale: str = "logit_scale"  # their full name for flava.logit_scale


def _first(pairs: list[tuple[str, str]], key: str) -> str | None:
    for ours, theirs in pairs:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return None


def foreign_names(key: str, layout: Layout, pretraining: bool) -> list[str]:
    """The foreign name(s) of one of our keys; three for a fused q/k/v tensor."""
    if pretraining:
        if key == "flava.logit_scale":
            return [layout.logit_scale]
        if key.startswith("flava."):
            return [layout.flava_prefix + name for name in foreign_names(key[len("flava.") :], layout, False)]
        if key.startswith("codebook.") and layout.codebook is not None:
            return [layout.codebook(key[len("codebook.") :])]
        if key.startswith("objectives."):
            objective, _, rest = key[len("objectives.") :].partition(".")
            prefix, pairs = layout.heads.get(objective, ("", []))
            name = _first(pairs, rest.removeprefix("head."))
            if name is not None:
                return [prefix + name]
        raise CheckpointError(f"no {layout.flava_prefix or 'FLAVA'} name for parameter '{key}'")
    head, _, rest = key.partition(".")
    theirs = layout.components.get(head, head)
    if head not in layout.embeddings:
        return [f"{theirs}.{rest}" if rest else theirs]  # projections, logit_scale
    layer = _LAYER_KEY.fullmatch(rest)
    if layer:
        index, inner = layer.groups()
        base = f"{theirs}.{layout.layer_path}.{index}."
        if inner.startswith("attn.qkv."):
            return [f"{base}{q}{inner[len('attn.qkv.'):]}" for q in layout.qkv]
        name = _first(layout.layer, inner)
        if name is not None:
            return [base + name]
    name = _first(layout.embeddings[head] + layout.common, rest)
    if name is None:
        raise CheckpointError(f"no foreign name for parameter '{key}'")
    return [f"{theirs}.{name}"]


def load_mapped(model: Any, available: dict[str, torch.Tensor], names: Callable[[str], list[str]], source: str) -> None:
    """Load ``available`` (foreign names) into ``model`` strictly; ``names`` maps our keys to theirs."""
    available = dict(available)
    ours, missing, mismatched = {}, [], []
    for key, target in model.state_dict().items():
        theirs = names(key)
        if any(n not in available for n in theirs):
            missing += [n for n in theirs if n not in available]
            continue
        tensor = torch.cat([available.pop(n) for n in theirs]) if len(theirs) > 1 else available.pop(theirs[0])
        if tensor.shape != target.shape:
            mismatched.append(f"{theirs[0]}: checkpoint {tuple(tensor.shape)}, model {tuple(target.shape)}")
        ours[key] = tensor
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if available:
        problems.append(f"unexpected keys ({len(available)}): {', '.join(sorted(available)[:20])}{' ...' if len(available) > 20 else ''}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:20])}")
    if problems:
        raise CheckpointError(f"{source} does not match the model:\n  " + "\n  ".join(problems))
    model.load_state_dict(ours, strict=True)
