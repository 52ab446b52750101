"""``text_lines``: one text per non-empty line of a file, without images (text-only batches: MLM)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource
from flava_kit.registry import register


@register("source", "text_lines")
class TextLines(IndexedSource):
    """One text per non-empty line of ``path``, keyed ``<file name>:<line>``."""

    def __init__(self, path: str, *, weight: Weight = 1.0):
        self.path, self.weight = Path(path), weight
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such text file")
        self.lines = [(i + 1, line.strip()) for i, line in enumerate(self.path.read_text().splitlines()) if line.strip()]

    def __len__(self) -> int:
        return len(self.lines)

    def read(self, index: int) -> dict:
        line, text = self.lines[index]
        return {"key": f"{self.path.name}:{line}", "text": text}
