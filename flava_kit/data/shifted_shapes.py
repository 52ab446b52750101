"""The synthetic dataset's 12 classes drawn by an independent routine: a generalisation check.

:class:`~flava_kit.data.synthetic.SyntheticShapes` teaches a model colour x shape words; a model
that only memorised that routine's exact colours, sizes and backgrounds fails here. This routine
shares no drawing code with it: colours are sampled in HSV around each colour's hue (other
shades), shapes are drawn at twice the size and downsampled (anti-aliased edges), larger and
smaller, often with a dark outline, on gradient or noisy backgrounds, sometimes blurred, and
every image goes through JPEG compression at a low quality. Shapes stay upright: turning them
is a further shift (squares read as diamonds), which this check leaves out.

``without`` switches single shifts off (see :data:`SHIFTS`), with every other draw unchanged:
what each one costs a model (``flava-kit eval RUN --recipe eval_shift_factors``).
"""

from __future__ import annotations

import colorsys
import io
import random
from typing import Literal, Sequence, get_args

from PIL import Image, ImageDraw, ImageFilter

from flava_kit.data.synthetic import COLORS, class_names

Shift = Literal["background", "shade", "size", "outline", "antialias", "blur", "jpeg"]
SHIFTS = get_args(Shift)
"""What ``without`` can switch off: a plain light background, the synthetic routine's exact colours,
its sizes (a quarter to half the side), no outline, no anti-aliasing, no blur, no JPEG."""

# Hue ranges (0..1) and the least value (brightness) that still reads as the colour's name.
HUES = {"red": ((-0.03, 0.02), 0.45), "green": ((0.26, 0.40), 0.35), "blue": ((0.56, 0.66), 0.4), "yellow": ((0.13, 0.17), 0.8)}


class ShiftedShapes:
    """``size`` labelled images of one shape each; item ``i`` is ``{"image", "text", "label", "key"}``,
    deterministic per index and seed, with the labels of :func:`~flava_kit.data.synthetic.class_names`;
    ``without`` names shifts (of :data:`SHIFTS`) not to apply."""

    def __init__(self, size: int = 600, image_size: int = 64, seed: int = 0, without: Sequence[Shift] = ()):
        unknown = sorted(set(without) - set(SHIFTS))
        if unknown:
            raise ValueError(f"without: unknown shift {', '.join(unknown)} (known: {', '.join(SHIFTS)})")
        self.size, self.image_size, self.seed, self.without = size, image_size, seed, frozenset(without)
        self.names = class_names()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} images")
        rng = random.Random(f"shifted/{self.seed}/{index}")
        label = rng.randrange(len(self.names))
        color, shape = self.names[label].split()
        side = self.image_size * 2  # drawn large, then downsampled: soft edges the other routine never has
        image = self._background(rng, side)
        if "background" in self.without:
            image = Image.new("RGB", (side, side), (230, 230, 230))
        draw = ImageDraw.Draw(image)
        extent = rng.uniform(0.2, 0.7) * side
        if "size" in self.without:  # the same draw mapped onto the synthetic routine's sizes
            extent = side / 4 + (extent - 0.2 * side) / 2
        cx, cy = (rng.uniform(extent / 2, side - extent / 2) for _ in range(2))
        outline = (rng.randint(0, 60),) * 3 if rng.random() < 0.5 else None
        outline = None if "outline" in self.without else outline
        width = rng.randint(2, 6)
        fill = self._shade(rng, color)
        fill = COLORS[color] if "shade" in self.without else fill
        if shape == "circle":
            draw.ellipse((cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2), fill=fill, outline=outline, width=width)
        else:
            half = extent / 2
            points = ([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half)] if shape == "square"
                      else [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)])  # fmt: skip
            draw.polygon(points, fill=fill, outline=outline, width=width if outline else 0)
        sampling = Image.Resampling.NEAREST if "antialias" in self.without else Image.Resampling.LANCZOS
        image = image.resize((self.image_size, self.image_size), sampling)
        if rng.random() < 0.3:
            sigma = rng.uniform(0.3, 0.8)
            image = image if "blur" in self.without else image.filter(ImageFilter.GaussianBlur(sigma))
        quality = rng.randint(20, 60)
        if "jpeg" not in self.without:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return {"image": image, "text": f"a {color} {shape}", "label": label, "key": f"shifted/{self.seed}/{index:06d}"}

    @staticmethod
    def _shade(rng: random.Random, color: str) -> tuple[int, int, int]:
        (low, high), least_value = HUES[color]
        hue = rng.uniform(low, high) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(least_value, 1.0))
        return tuple(round(255 * c) for c in rgb)

    @staticmethod
    def _background(rng: random.Random, side: int) -> Image.Image:
        """A vertical gradient between two pale tones, or a pale tone with pixel noise."""
        top, bottom = ([rng.randint(150, 250) for _ in range(3)] for _ in range(2))
        if rng.random() < 0.5:
            column = Image.new("RGB", (1, side))
            column.putdata([tuple(round(t + (b - t) * y / (side - 1)) for t, b in zip(top, bottom)) for y in range(side)])
            return column.resize((side, side))
        noise = Image.frombytes("L", (side, side), rng.randbytes(side * side)).convert("RGB")  # seeded, unlike effect_noise
        return Image.blend(Image.new("RGB", (side, side), tuple(top)), noise, rng.uniform(0.1, 0.25))
