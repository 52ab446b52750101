"""``shifted_shapes``: the synthetic classes drawn by an independent routine (a generalisation check)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flava_kit.constraints import Size, Weight
from flava_kit.data.shifted_shapes import Shift, ShiftedShapes
from flava_kit.data.sources.base import IndexedSource
from flava_kit.registry import register


@register("source", "shifted_shapes")
class ShiftedShapesSource(IndexedSource):
    """``size`` labelled images of the synthetic dataset's 12 classes drawn by another routine (see
    :class:`~flava_kit.data.shifted_shapes.ShiftedShapes`: other shades, sizes, outlines,
    backgrounds, JPEG artefacts), with captions and ``class_names``: a model that only memorised
    the synthetic drawing routine fails here. ``without`` switches single shifts off (every other
    draw unchanged), to measure what each costs (the eval recipe ``eval_shift_factors``)."""

    def __init__(self, size: Annotated[int, Field(gt=0)] = 600, *, image_size: Size = 64, seed: int = 0, weight: Weight = 1.0,
                 without: tuple[Shift, ...] = ()):  # fmt: skip
        self.shapes, self.weight = ShiftedShapes(size, image_size, seed, without), weight
        self.class_names = list(self.shapes.names)

    def __len__(self) -> int:
        return len(self.shapes)

    def read(self, index: int) -> dict:
        return self.shapes[index]
