"""Constrained parameter types for component signatures: the signature is the schema, ranges included.

Annotating a constructor parameter with one of these (``hidden_size: Size = 768``) makes recipe
validation reject values outside the range with the recipe path, and ``flava-kit schema`` export
the range to the JSON Schema (``exclusiveMinimum``, ``maximum``), so editors flag it as you type.
Upper bounds are generous but finite: a typo such as ``hidden_size: 7680000`` is caught before it
asks the allocator for terabytes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Size = Annotated[int, Field(gt=0, le=1 << 16)]
"""A width, a count of heads or channels, a patch or image side: 1 ... 65,536."""

Count = Annotated[int, Field(ge=0, le=1 << 12)]
"""A number of layers or blocks, zero allowed: 0 ... 4,096."""

Vocabulary = Annotated[int, Field(gt=0, le=1 << 24)]
"""A vocabulary or number of classes: 1 ... 16,777,216."""

TokenId = Annotated[int, Field(ge=0, le=1 << 24)]
"""A token id: 0 ... 16,777,216."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
"""A probability, ratio or fraction: 0 ... 1."""

Epsilon = Annotated[float, Field(gt=0.0, le=1.0)]
"""A numerical-stability epsilon (LayerNorm): (0, 1]."""

Weight = Annotated[float, Field(ge=0.0)]
"""A loss weight: 0 or more (0 keeps the objective's logits and metrics without training on it)."""

Steps = Annotated[int, Field(gt=0)]
"""A positive number of steps, items or a batch size."""

Rate = Annotated[float, Field(gt=0.0)]
"""A positive rate (learning rate, aspect ratio, scale)."""


def multiple_of(node: dict, path: tuple, size_key: str, divisor_key: str, what: str):
    """``recipe_checks`` helper: ``node[size_key]`` must be a multiple of ``node[divisor_key]``."""
    size, divisor = node[size_key], node[divisor_key]
    if size % divisor:
        lower, upper = size - size % divisor, size - size % divisor + divisor
        nearest = " or ".join(str(v) for v in (lower, upper) if v > 0)
        yield (path + (size_key,), f"{size_key} {size} is not a multiple of {divisor_key} {divisor} ({what})",
               f"set {size_key} to {nearest}, or change {divisor_key}")  # fmt: skip
