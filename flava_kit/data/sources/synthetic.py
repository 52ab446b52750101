"""``synthetic``: the embedded dataset of coloured shapes with captions (nothing to download)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flava_kit.constraints import Probability, Size, Weight
from flava_kit.data.sources.base import IndexedSource
from flava_kit.data.synthetic import SyntheticShapes, class_names
from flava_kit.registry import register


@register("source", "synthetic")
class SyntheticSource(IndexedSource):
    """``size`` image-text pairs drawn with Pillow (see :class:`~flava_kit.data.synthetic.SyntheticShapes`):
    one shape per image, or two with probability ``two_shapes`` (those have no class label, so a
    classifier's recipe sets ``two_shapes: 0``). ``split: held_out`` gives ``size`` one-shape images
    from another seed instead, never seen in training: what the shipped eval recipes report on.
    ``variety`` (0 to 1) draws each class in more ways: other shades, turns, outlines, noisy
    backgrounds, sizes (see :class:`~flava_kit.data.synthetic.SyntheticShapes`). ``class_names``
    names the labels (colour x shape).
    """

    HELD_OUT_SEED = 10_007  # added to the seed: the held-out images share no drawing with training's

    def __init__(self, size: Annotated[int, Field(gt=0)] = 20000, *, image_size: Size = 64, seed: int = 0,
                 two_shapes: Probability = 0.25, split: Literal["train", "held_out"] = "train", weight: Weight = 1.0,
                 variety: Probability = 0.0):  # fmt: skip
        if split == "held_out":
            seed, two_shapes = seed + self.HELD_OUT_SEED, 0.0
        self.shapes = SyntheticShapes(size, image_size, seed=seed, two_shapes=two_shapes, variety=variety)
        self.weight, self.class_names = weight, class_names()

    def __len__(self) -> int:
        return len(self.shapes)

    def read(self, index: int) -> dict:
        return {"key": f"synthetic/{self.shapes.seed}/{index:08d}", **self.shapes[index]}
