"""``manifest``: items listed in a JSONL or CSV file: image-text pairs, sentence pairs, questions with answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.data.sources.fields import Fields, read_class_names
from flava_kit.registry import register


@register("source", "manifest")
class ImageTextManifest(IndexedSource):
    """Items listed in a JSONL or CSV manifest, one per line, with their fields named by the
    ``*_field`` settings: ``image_field`` (a path relative to the manifest), ``text_field`` (the
    caption, or a VQA question), ``text_pair_field`` (a second text: MNLI's hypothesis),
    ``label_field`` (an integer, or a name of ``class_names``: a list, or a file with one per line)
    and ``answers_field`` (every annotator's answer: a list, in CSV a JSON text; see
    :mod:`~flava_kit.data.sources.fields`). A field set to null is not read: ``image_field: null``
    gives text-only items. Every field read is required on every line but the label, which a line
    may leave out or empty (no ``label``).

    An item's key is ``<manifest name>:<line>``; a line without its fields, or an unreadable image,
    is a :class:`DataError` naming file, line and field.
    """

    def __init__(self, path: str, *, image_field: str | None = "image", text_field: str | None = "text", text_pair_field: str | None = None,
                 label_field: str | None = "label", answers_field: str | None = None, class_names: list[str] | str | None = None,
                 weight: Weight = 1.0):  # fmt: skip
        self.path, self.weight = Path(path), weight
        if image_field is None and text_field is None:
            raise DataError(f"{self.path}: image_field and text_field are both null: its items would hold neither image nor text")
        names = read_class_names(class_names, str(self.path))
        if names is not None:
            self.class_names = names  # what tasks read (source.class_names)
        roles = {"image": image_field, "text": text_field, "text_pair": text_pair_field, "label": label_field, "answers": answers_field}
        self.fields = Fields(roles, class_names=None if names is None else tuple(names))
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such manifest")
        text = self.path.read_text()
        if self.path.suffix == ".csv":
            self.rows = [(i + 2, row) for i, row in enumerate(csv.DictReader(text.splitlines()))]
        else:
            self.rows = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> dict:
        line, row = self.rows[index]
        where = f"{self.path}:{line}"
        if isinstance(row, str):
            try:
                row = json.loads(row)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with fields {', '.join(self.fields.configured().values())}, got {row!r}")
        return self.fields.item(row, f"{self.path.name}:{line}", where, image=self._image)

    def _image(self, value: Any, where: str) -> Image.Image:
        if not isinstance(value, str):
            raise self.fields.problem(where, "image", f"holds no image path: {value!r}")
        return open_image(self.path.parent / value, f"{where}: {self.path.parent / value}")
