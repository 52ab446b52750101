"""``labelled_folder``: images in one subfolder per class (labelled images, for classifiers)."""

from __future__ import annotations

from pathlib import Path

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.data.sources.image_folder import image_files
from flava_kit.registry import register


@register("source", "labelled_folder")
class LabelledImageFolder(IndexedSource):
    """Images in one subfolder per class, labelled by the class's index (subfolders in sorted
    order), without text: for fine-tuning and evaluating image classifiers. ``class_names`` are
    the subfolder names (``_`` read as a space), or the lines of a ``classnames.txt`` in ``root``."""

    def __init__(self, root: str, *, weight: Weight = 1.0):
        self.root, self.weight = Path(root), weight
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
        self.files = [(path, label) for label, folder in enumerate(folders) for path in image_files(folder)]

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> dict:
        path, label = self.files[index]
        return {"key": path.relative_to(self.root).as_posix(), "image": open_image(path, str(path)), "label": label}
