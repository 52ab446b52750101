"""``shapes_task``: FLAVA's downstream task types on the embedded shapes, made on the fly (nothing to download).

Each task asks what the pretraining data taught (colours, shapes, which words name them) in the
form of one of the paper's downstream benchmarks, so a pretraining run on the shapes can be
fine-tuned and evaluated through the same code as VQAv2, MNLI or Hateful Memes would be:

- ``vqa``: an image of one or two shapes, a question, and ten annotators' answers (each right
  with probability 0.9, else another answer of the same type). Questions use only caption words:
  ``"the circle"`` (answer: its colour), ``"the red"`` (its shape), ``"a red circle"`` (``yes``/``no``).
- ``text_pair``: two captions, no image, labelled ``same`` (same colour and shape), ``recoloured``
  (same shape, another colour) or ``other shape`` (like MNLI's three classes).
- ``text_similarity``: two captions, no image, scored 0-5 for how alike the shapes they name are,
  the mean of five annotators' ratings (like STS-B's): a regression target (see
  :data:`SIMILARITY`).
- ``image_text_match``: an image and a caption, labelled ``match`` or ``mismatch`` (one word
  changed): neither the image nor the text alone decides (like Hateful Memes' pairs).
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Literal

from pydantic import Field

from flava_kit.constraints import Size, Weight
from flava_kit.data.sources.base import IndexedSource
from flava_kit.data.synthetic import COLORS, SHAPES, TEMPLATES, SyntheticShapes, class_names
from flava_kit.registry import register

SPLIT_SEEDS = {"train": 0, "validation": 20_011, "held_out": 10_007}
"""Added to the seed: the splits share no drawing."""

TASK_CLASSES = {"text_pair": ["same", "recoloured", "other shape"], "image_text_match": ["mismatch", "match"]}
ANNOTATORS, ANNOTATOR_ACCURACY = 10, 0.9
SIMILARITY = {"same": 5, "recoloured": 3, "same colour": 2, "unrelated": 0}
"""``text_similarity``'s true rating of a caption pair by what the second caption changes; each of
:data:`RATERS` annotators is off by one point (up or down, within 0-5) with probability
:data:`RATER_SLIP`, and the score is their mean, so scores are fractions as STS-B's are."""
RATERS, RATER_SLIP = 5, 0.4
_TWO = re.compile(rf"a ({'|'.join(COLORS)}) ({'|'.join(SHAPES)}) .* a ({'|'.join(COLORS)}) ({'|'.join(SHAPES)})$")


def _objects(item: dict) -> list[tuple[str, str]]:
    """The (colour, shape) of each shape drawn in a synthetic item."""
    if item["label"] >= 0:
        return [tuple(class_names()[item["label"]].split(" ", 1))]
    c1, s1, c2, s2 = _TWO.match(item["text"]).groups()
    return [(c1, s1), (c2, s2)]


def _similar_pair(rng: random.Random) -> dict:
    """Two captions and their score: the mean of the raters' ratings of how alike their shapes are."""
    color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
    relation = rng.choice(list(SIMILARITY))
    other_color = color if relation in ("same", "same colour") else rng.choice([c for c in COLORS if c != color])
    other_shape = shape if relation in ("same", "recoloured") else rng.choice([s for s in SHAPES if s != shape])
    ratings = [min(5, max(0, SIMILARITY[relation] + (rng.choice((-1, 1)) if rng.random() < RATER_SLIP else 0))) for _ in range(RATERS)]
    return {"text": _caption(rng, color, shape), "text_pair": _caption(rng, other_color, other_shape), "label": sum(ratings) / RATERS}


def _caption(rng: random.Random, color: str, shape: str) -> str:
    """A caption template without a size word (a size the picture may not have would blur the labels)."""
    return rng.choice([t for t in TEMPLATES if "{size}" not in t]).format(f"{color} {shape}")


@register("source", "shapes_task")
class ShapesTaskSource(IndexedSource):
    """``size`` items of one downstream ``task`` (``vqa``, ``text_pair``, ``text_similarity`` or
    ``image_text_match``) on the synthetic shapes. ``split`` (``train``, ``validation``,
    ``held_out``) draws from its own seed, so model selection and the final numbers never see
    training's images. Classification tasks name their labels in ``class_names``;
    ``text_similarity``'s labels are scores."""

    def __init__(self, task: Literal["vqa", "text_pair", "text_similarity", "image_text_match"],
                 size: Annotated[int, Field(gt=0)] = 2000, *, split: Literal["train", "validation", "held_out"] = "train",
                 image_size: Size = 64, seed: int = 0, weight: Weight = 1.0):  # fmt: skip
        self.task, self.weight, self.seed = task, weight, seed + SPLIT_SEEDS[split]
        self.shapes = SyntheticShapes(size, image_size, seed=self.seed, two_shapes=0.5 if task == "vqa" else 0.0)
        if task in TASK_CLASSES:
            self.class_names = TASK_CLASSES[task]

    def __len__(self) -> int:
        return len(self.shapes)

    def read(self, index: int) -> dict:
        rng = random.Random(f"{self.task}/{self.seed}/{index}")  # its own draws: the picture is the synthetic item's
        key = f"shapes_task/{self.task}/{self.seed}/{index:08d}"
        if self.task == "text_pair":
            color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
            label = rng.randrange(3)
            other_color = rng.choice([c for c in COLORS if c != color]) if label == 1 else color if label == 0 else rng.choice(list(COLORS))
            other_shape = shape if label < 2 else rng.choice([s for s in SHAPES if s != shape])
            return {"key": key, "text": _caption(rng, color, shape), "text_pair": _caption(rng, other_color, other_shape), "label": label}
        if self.task == "text_similarity":
            return {"key": key, **_similar_pair(rng)}
        item = self.shapes[index]
        objects = _objects(item)
        if self.task == "image_text_match":
            color, shape = objects[0]
            match = rng.random() < 0.5
            if not match:
                if rng.random() < 0.5:
                    color = rng.choice([c for c in COLORS if c != color])
                else:
                    shape = rng.choice([s for s in SHAPES if s != shape])
            return {"key": key, "image": item["image"], "text": _caption(rng, color, shape), "label": int(match)}
        question, answer, choices = self._question(rng, objects)
        answers = [answer if rng.random() < ANNOTATOR_ACCURACY else rng.choice(choices) for _ in range(ANNOTATORS)]
        return {"key": key, "image": item["image"], "text": question, "answers": answers}

    @staticmethod
    def _question(rng: random.Random, objects: list[tuple[str, str]]) -> tuple[str, str, list[str]]:
        """(question, right answer, the answers of its type): a colour, a shape or yes/no question
        that the image answers without ambiguity."""
        color, shape = rng.choice(objects)
        kinds = ["yes/no"]
        if sum(s == shape for _, s in objects) == 1:
            kinds.append("colour")
        if sum(c == color for c, _ in objects) == 1:
            kinds.append("shape")
        kind = rng.choice(kinds)
        if kind == "colour":
            return f"the {shape}", color, list(COLORS)
        if kind == "shape":
            return f"the {color}", shape, list(SHAPES)
        if rng.random() < 0.5:
            return f"a {color} {shape}", "yes", ["yes", "no"]
        absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in objects]
        color, shape = rng.choice(absent)
        return f"a {color} {shape}", "no", ["yes", "no"]
