"""An embedded image-text dataset: coloured shapes drawn with Pillow, with captions that say what.

Deterministic per index and seed, nothing to download: the default data of ``flava-kit
pretrain``, and a held-out set for zero-shot classification (colour x shape classes).
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

COLORS = {"red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 119, 180), "yellow": (240, 200, 30)}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("above", "below", "left of", "right of")
TEMPLATES = ("a {}", "a photo of a {}", "a picture of a {}", "the {}", "a {size} {}")
SIZES = ("small", "large")


def class_names() -> list[str]:
    """The zero-shot classes: every colour x shape, e.g. ``"red circle"``."""
    return [f"{color} {shape}" for color in COLORS for shape in SHAPES]


def vocabulary() -> list[str]:
    """Every word a caption or a zero-shot prompt can use."""
    words = {"a", "photo", "of", "picture", "the", "and", *SIZES, *COLORS, *SHAPES}
    words.update(word for relation in RELATIONS for word in relation.split())
    return sorted(words)


class SyntheticShapes:
    """``size`` images of one shape (or, with probability ``two_shapes``, two) on a light background.

    Item ``i`` is ``{"image": PIL.Image, "text": caption, "label": class index or -1}``; the label
    is the shape's class for one-shape images (see :func:`class_names`). With ``shade_jitter`` > 0
    each shape's colour is its colour's RGB moved by up to that much per channel (other shades of
    the same named colour), so a model learns the names rather than four exact RGB values.
    """

    def __init__(self, size: int = 4000, image_size: int = 64, seed: int = 0, two_shapes: float = 0.25, shade_jitter: int = 0):
        self.size, self.image_size, self.seed, self.two_shapes = size, image_size, seed, two_shapes
        self.shade_jitter = shade_jitter

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} images")
        rng = random.Random(self.seed * 1_000_003 + index)
        background = tuple(rng.randint(200, 255) for _ in range(3))
        image = Image.new("RGB", (self.image_size, self.image_size), background)
        draw = ImageDraw.Draw(image)
        if rng.random() < self.two_shapes:
            (c1, s1), (c2, s2) = self._pick(rng), self._pick(rng)
            relation = rng.choice(RELATIONS)
            first, second = self._two_boxes(rng, relation)
            self._draw(draw, s1, self._shade(rng, c1), first)
            self._draw(draw, s2, self._shade(rng, c2), second)
            return {"image": image, "text": f"a {c1} {s1} {relation} a {c2} {s2}", "label": -1}
        color, shape = self._pick(rng)
        extent = rng.randint(self.image_size // 4, self.image_size // 2)
        left, top = rng.randint(0, self.image_size - extent), rng.randint(0, self.image_size - extent)
        self._draw(draw, shape, self._shade(rng, color), (left, top, left + extent, top + extent))
        size = SIZES[0] if extent < self.image_size * 3 // 8 else SIZES[1]
        text = rng.choice(TEMPLATES).format(f"{color} {shape}", size=size)
        return {"image": image, "text": text, "label": class_names().index(f"{color} {shape}")}

    def _shade(self, rng: random.Random, color: str) -> tuple[int, ...]:
        if not self.shade_jitter:  # no draw: the images stay those of the dataset without jitter
            return COLORS[color]
        return tuple(min(255, max(0, c + rng.randint(-self.shade_jitter, self.shade_jitter))) for c in COLORS[color])

    @staticmethod
    def _pick(rng: random.Random) -> tuple[str, str]:
        return rng.choice(list(COLORS)), rng.choice(SHAPES)

    def _two_boxes(self, rng: random.Random, relation: str) -> tuple[tuple, tuple]:
        half = self.image_size // 2
        extent = rng.randint(half // 2, half - 2)
        a, b = rng.randint(0, half - extent), rng.randint(0, self.image_size - extent)
        if relation in ("above", "below"):
            first, second = (b, a, b + extent, a + extent), (b, a + half, b + extent, a + half + extent)
        else:
            first, second = (a, b, a + extent, b + extent), (a + half, b, a + half + extent, b + extent)
        return (first, second) if relation in ("above", "left of") else (second, first)

    @staticmethod
    def _draw(draw: ImageDraw.ImageDraw, shape: str, color: tuple, box: tuple) -> None:
        if shape == "circle":
            draw.ellipse(box, fill=color)
        elif shape == "square":
            draw.rectangle(box, fill=color)
        else:
            left, top, right, bottom = box
            draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=color)
