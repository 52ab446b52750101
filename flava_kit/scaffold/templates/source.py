"""A data source for flava_kit (contract: ``flava_kit.contracts.Source``): the lines of a text file,
as text-only items, read with random access (epochs are permutations, positions are exact)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.data.sources import DataError, IndexedSource


class Source(IndexedSource):
    """One item per non-empty line of ``path``, keyed ``<file name>:<line>``."""

    def __init__(self, path: str, *, weight: float = 1.0):
        self.path, self.weight = Path(path), weight
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such text file")
        self.lines = [(n, line.strip()) for n, line in enumerate(self.path.read_text().splitlines(), 1) if line.strip()]

    def __len__(self) -> int:
        return len(self.lines)

    def read(self, index: int) -> dict:
        """Item ``index``: its key and its text."""
        number, text = self.lines[index]
        return {"key": f"{self.path.name}:{number}", "text": text}
