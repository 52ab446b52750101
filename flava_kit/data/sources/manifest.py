"""``manifest``: image-text pairs listed in a JSONL or CSV file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.registry import register


@register("source", "manifest")
class ImageTextManifest(IndexedSource):
    """Pairs listed in a JSONL or CSV manifest with ``image`` (a path relative to the manifest),
    ``text`` and, optionally, an integer ``label``. An item's key is ``<manifest name>:<line>``; a
    line without its fields, or an unreadable image, is a :class:`DataError` naming file and line.
    """

    def __init__(self, path: str, *, weight: Weight = 1.0):
        self.path, self.weight = Path(path), weight
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
        if not isinstance(row, dict) or not row.get("image") or not isinstance(row.get("text"), str):
            raise DataError(f"{where}: expected fields 'image' and 'text', got {row!r}")
        item = {"key": f"{self.path.name}:{line}", "image": open_image(self.path.parent / row["image"], f"{where}: {self.path.parent / row['image']}"), "text": row["text"]}
        if row.get("label") not in (None, ""):  # for fine-tuning classifiers
            item["label"] = int(row["label"])
        return item
