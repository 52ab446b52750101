"""An embedded image-text dataset: coloured shapes drawn with Pillow, with captions that say what.

Deterministic per index and seed, nothing to download: the default data of ``flava-kit
pretrain``, and a held-out set for zero-shot classification (colour x shape classes).
"""

from __future__ import annotations

import math
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
    is the shape's class for one-shape images (see :func:`class_names`).

    ``variety`` (0 to 1) widens what one class looks like, so a model learns the words rather than
    four exact RGB values and axis-aligned outlines: at 1, each colour's RGB is scaled by 0.7-1.1
    and moved by up to 24 per channel, squares and triangles turn by up to 25 degrees, a third of
    the shapes get a thin dark outline, half of the backgrounds get pixel noise, and sizes range
    a quarter wider. At 0 nothing extra is drawn (the images of the plain routine).
    """

    def __init__(self, size: int = 4000, image_size: int = 64, seed: int = 0, two_shapes: float = 0.25, variety: float = 0.0):
        self.size, self.image_size, self.seed, self.two_shapes, self.variety = size, image_size, seed, two_shapes, variety

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} images")
        rng = random.Random(self.seed * 1_000_003 + index)
        # variety draws from its own generator, so it never changes an item's class (at 0 nothing draws from it)
        look = random.Random(f"variety/{self.seed}/{index}") if self.variety else rng
        background = tuple(rng.randint(200, 255) for _ in range(3))
        image = self._background(look, background)
        draw = ImageDraw.Draw(image)
        if rng.random() < self.two_shapes:
            (c1, s1), (c2, s2) = self._pick(rng), self._pick(rng)
            relation = rng.choice(RELATIONS)
            first, second = self._two_boxes(rng, relation)
            self._draw(draw, s1, self._shade(look, c1), first, *self._pose(look))
            self._draw(draw, s2, self._shade(look, c2), second, *self._pose(look))
            return {"image": image, "text": f"a {c1} {s1} {relation} a {c2} {s2}", "label": -1}
        color, shape = self._pick(rng)
        low, high = self.image_size // 4, self.image_size // 2
        extent = rng.randint(round(low * (1 - self.variety / 4)), round(high * (1 + self.variety / 4)))
        left, top = rng.randint(0, self.image_size - extent), rng.randint(0, self.image_size - extent)
        self._draw(draw, shape, self._shade(look, color), (left, top, left + extent, top + extent), *self._pose(look))
        size = SIZES[0] if extent < self.image_size * 3 // 8 else SIZES[1]
        text = rng.choice(TEMPLATES).format(f"{color} {shape}", size=size)
        return {"image": image, "text": text, "label": class_names().index(f"{color} {shape}")}

    # Each of these draws only when ``variety`` > 0, so variety 0 is the plain routine.
    def _background(self, rng: random.Random, color: tuple) -> Image.Image:
        image = Image.new("RGB", (self.image_size, self.image_size), color)
        if self.variety and rng.random() < self.variety / 2:
            side = self.image_size
            noise = Image.frombytes("L", (side, side), rng.randbytes(side * side)).convert("RGB")
            image = Image.blend(image, noise, 0.12 * self.variety)
        return image

    def _shade(self, rng: random.Random, color: str) -> tuple[int, ...]:
        if not self.variety:
            return COLORS[color]
        scale, shift = rng.uniform(1 - 0.3 * self.variety, 1 + 0.1 * self.variety), round(24 * self.variety)
        return tuple(min(255, max(0, round(c * scale) + rng.randint(-shift, shift))) for c in COLORS[color])

    def _pose(self, rng: random.Random) -> tuple[float, bool]:
        """A turn in degrees and whether to outline the shape."""
        if not self.variety:
            return 0.0, False
        return rng.uniform(-25, 25) * self.variety, rng.random() < self.variety / 3

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
    def _draw(draw: ImageDraw.ImageDraw, shape: str, color: tuple, box: tuple, turn: float = 0.0, outline: bool = False) -> None:
        line = {"outline": (40, 40, 40), "width": 1} if outline else {}
        left, top, right, bottom = box
        if shape == "circle":
            draw.ellipse(box, fill=color, **line)
            return
        corners = [(left, top), (right, top), (right, bottom), (left, bottom)] if shape == "square" else [((left + right) / 2, top), (right, bottom), (left, bottom)]
        if turn:
            cx, cy, angle = (left + right) / 2, (top + bottom) / 2, math.radians(turn)
            cos, sin = math.cos(angle), math.sin(angle)
            corners = [(cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos) for x, y in corners]
        if shape == "square" and not turn:
            draw.rectangle(box, fill=color, **line)  # the plain routine's exact pixels
        else:
            draw.polygon(corners, fill=color, **line)
