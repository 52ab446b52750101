"""Data sources on disk: image-text pairs (folder + JSONL/CSV manifest), image folders, text lines.

Every source is a sequence whose items are dicts with ``image`` (a PIL image) and/or ``text``.
Reading an item that is broken (an unreadable image, a manifest line without its fields) raises
:class:`DataError`, naming the file and line; the batch builder skips it with a warning and a
count, or stops, as the recipe's ``strict`` says.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from flava_kit.errors import FlavaKitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class DataError(FlavaKitError, ValueError):
    """One data item cannot be read; the message says which file (and line)."""


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from exc


class ImageTextManifest:
    """Pairs listed in a JSONL or CSV manifest with ``image`` (relative to the manifest), ``text``
    and, optionally, an integer ``label``."""

    def __init__(self, manifest: str | Path):
        self.path = Path(manifest)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such manifest")
        text = self.path.read_text()
        if self.path.suffix == ".csv":
            self.rows = [(i + 2, row) for i, row in enumerate(csv.DictReader(text.splitlines()))]
        else:
            self.rows = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        line, row = self.rows[index]
        where = f"{self.path}:{line}"
        if isinstance(row, str):
            try:
                row = json.loads(row)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not row.get("image") or not isinstance(row.get("text"), str):
            raise DataError(f"{where}: expected fields 'image' and 'text', got {row!r}")
        item = {"image": _open_image(self.path.parent / row["image"]), "text": row["text"]}
        if row.get("label") not in (None, ""):  # for fine-tuning classifiers
            item["label"] = int(row["label"])
        return item


class ImageFolder:
    """Every image file under ``root`` (sorted), without text."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such image folder")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return {"image": _open_image(self.files[index])}


class TextLines:
    """One text per non-empty line of a file, without images."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such text file")
        self.lines = [line.strip() for line in self.path.read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> dict:
        return {"text": self.lines[index]}


class LabelledImageFolder:
    """Images in one subfolder per class, labelled by the class's index (subfolders in sorted
    order), without text: for fine-tuning and evaluating image classifiers. ``class_names`` are
    the subfolder names (``_`` read as a space), or the lines of a ``classnames.txt`` in ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such image folder")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise DataError(f"{self.root}: no class subfolders (expected one folder of images per class)")
        names_file = self.root / "classnames.txt"
        if names_file.is_file():
            self.class_names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
            if len(self.class_names) != len(folders):
                raise DataError(f"{names_file}: {len(self.class_names)} names for {len(folders)} class folders")
        else:
            self.class_names = [folder.name.replace("_", " ") for folder in folders]
        self.files = [(path, label) for label, folder in enumerate(folders) for path in ImageFolder(folder).files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path, label = self.files[index]
        return {"image": _open_image(path), "label": label}
