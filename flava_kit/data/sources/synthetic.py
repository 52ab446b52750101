"""``synthetic``: the embedded dataset of coloured shapes with captions (nothing to download)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flava_kit.constraints import Probability, Size, Weight
from flava_kit.data.sources.base import IndexedSource
from flava_kit.data.synthetic import SyntheticShapes
from flava_kit.registry import register


@register("source", "synthetic")
class SyntheticSource(IndexedSource):
    """``size`` image-text pairs drawn with Pillow (see :class:`~flava_kit.data.synthetic.SyntheticShapes`):
    one shape per image, or two with probability ``two_shapes`` (those have no class label, so a
    classifier's recipe sets ``two_shapes: 0``). ``held_out`` more one-shape images, from another
    seed, are what a pretraining run evaluates on zero-shot at its end (0: none). ``variety``
    (0 to 1) draws each class in more ways: other shades, turns, outlines, noisy backgrounds, sizes
    (see :class:`~flava_kit.data.synthetic.SyntheticShapes`); the held-out images share it.
    """

    def __init__(self, size: Annotated[int, Field(gt=0)] = 20000, *, image_size: Size = 64, seed: int = 0,
                 two_shapes: Probability = 0.25, held_out: Annotated[int, Field(ge=0)] = 600, weight: Weight = 1.0,
                 variety: Probability = 0.0):  # fmt: skip
        self.shapes = SyntheticShapes(size, image_size, seed=seed, two_shapes=two_shapes, variety=variety)
        self.held_out_size, self.weight = held_out, weight

    def __len__(self) -> int:
        return len(self.shapes)

    def read(self, index: int) -> dict:
        return {"key": f"synthetic/{self.shapes.seed}/{index:08d}", **self.shapes[index]}

    def held_out(self) -> SyntheticShapes | None:
        """The held-out one-shape images (another seed), or None with ``held_out: 0``."""
        if not self.held_out_size:
            return None
        return SyntheticShapes(self.held_out_size, self.shapes.image_size, seed=self.shapes.seed + 10_007, two_shapes=0.0,
                               variety=self.shapes.variety)  # fmt: skip
