"""``image_folder``: every image under a folder, without text (image-only batches: MIM)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import IMAGE_SUFFIXES, DataError, IndexedSource, open_image
from flava_kit.registry import register


def image_files(root: Path) -> list[Path]:
    """Every image file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


@register("source", "image_folder")
class ImageFolder(IndexedSource):
    """Every image file under ``root`` (sorted), keyed by its path relative to ``root``."""

    def __init__(self, root: str, *, weight: Weight = 1.0):
        self.root, self.weight = Path(root), weight
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such image folder")
        self.files = image_files(self.root)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> dict:
        path = self.files[index]
        return {"key": path.relative_to(self.root).as_posix(), "image": open_image(path, str(path))}
