"""Reading what to embed or evaluate: an image folder, an image-text manifest, or a text file,
each item with a stable key (the file's relative path, the manifest line, the text line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flava_kit.data.sources import DataError, ImageFolder, ImageTextManifest, LabelledImageFolder, TextLines
from flava_kit.errors import FlavaKitError


def read_items(images: str | None = None, manifest: str | None = None, texts: str | None = None) -> tuple[list[str], list[Any] | None, list[str] | None, int]:
    """(keys, images or None, texts or None, skipped) from exactly one of the three, keyed as the
    sources key them (the file's relative path, ``manifest:line``, ``file:line``); unreadable items
    are skipped and counted."""
    if sum(x is not None for x in (images, manifest, texts)) != 1:
        raise FlavaKitError("give exactly one of: an image folder, a manifest, a text file")
    source = TextLines(texts) if texts is not None else ImageFolder(images) if images is not None else ImageTextManifest(manifest)
    keys, pictures, captions, skipped = [], [], [], 0
    for index in range(len(source)):
        try:
            item = source[index]
        except DataError:
            skipped += 1
            continue
        keys.append(item["key"])
        if "image" in item:
            pictures.append(item["image"])
        if "text" in item:
            captions.append(item["text"])
    if not keys:
        raise FlavaKitError(f"{images or manifest or texts}: no readable item ({skipped} unreadable)")
    return keys, (pictures if images is not None or manifest is not None else None), (captions if texts is not None or manifest is not None else None), skipped


def read_labelled(path: str) -> tuple[list[str], list[Any], list[int], list[str]]:
    """(keys, images, labels, class names) of labelled images: a folder with one subfolder per class
    (class names from the subfolder names, or from ``classnames.txt`` in the folder, one per line in
    the subfolders' sorted order), or a manifest with a ``label`` column and a ``classnames.txt``
    beside it (line ``i`` names label ``i``). Unreadable images are an error naming the file."""
    root = Path(path)
    if root.is_dir():
        folder = LabelledImageFolder(root)
        items = [folder[i] for i in range(len(folder))]
        return [item["key"] for item in items], [item["image"] for item in items], [item["label"] for item in items], folder.class_names
    names_file = root.parent / "classnames.txt"
    listed = [line.strip() for line in names_file.read_text().splitlines() if line.strip()] if names_file.is_file() else None
    keys, images, labels = [], [], []
    manifest = ImageTextManifest(root)
    if listed is None:
        raise FlavaKitError(f"{root}: a labelled manifest needs {names_file} (one class name per line, line i for label i)")
    for index in range(len(manifest)):
        item = manifest[index]
        if "label" not in item or not 0 <= item["label"] < len(listed):
            raise FlavaKitError(f"{root}:{manifest.rows[index][0]}: label {item.get('label')} is not one of the {len(listed)} classes")
        keys.append(item["key"])
        images.append(item["image"])
        labels.append(item["label"])
    return keys, images, labels, listed


def read_templates(path: str | None) -> tuple[str, ...]:
    """Prompt templates, one per line, each with ``{}`` for the class name; the built-in set without a file."""
    from flava_kit.evaluation.features import TEMPLATES

    if path is None:
        return TEMPLATES
    templates = tuple(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise FlavaKitError(f"{path}: every template needs '{{}}' for the class name" + (f" (not: {bad[0]!r})" if bad else " (the file is empty)"))
    return templates
