"""Reading what to embed or evaluate: an image folder, an image-text manifest, or a text file,
each item with a stable key (the file's relative path, the manifest line, the text line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flava_kit.data.sources import DataError, ImageFolder, ImageTextManifest, TextLines
from flava_kit.errors import FlavaKitError


def read_items(images: str | None = None, manifest: str | None = None, texts: str | None = None) -> tuple[list[str], list[Any] | None, list[str] | None, int]:
    """(keys, images or None, texts or None, skipped) from exactly one of the three; unreadable
    items are skipped and counted."""
    if sum(x is not None for x in (images, manifest, texts)) != 1:
        raise FlavaKitError("give exactly one of: an image folder, a manifest, a text file")
    if texts is not None:
        lines = TextLines(texts)
        return [f"line {i + 1}" for i in range(len(lines))], None, [lines[i]["text"] for i in range(len(lines))], 0
    source = ImageFolder(images) if images is not None else ImageTextManifest(manifest)
    keys, pictures, captions, skipped = [], [], [], 0
    for index in range(len(source)):
        try:
            item = source[index]
        except DataError:
            skipped += 1
            continue
        if images is not None:
            keys.append(str(source.files[index].relative_to(source.root)))
        else:
            keys.append(f"{Path(manifest).name}:{source.rows[index][0]}")
            captions.append(item["text"])
        pictures.append(item["image"])
    if not keys:
        raise FlavaKitError(f"{images or manifest}: no readable item ({skipped} unreadable)")
    return keys, pictures, (captions if manifest is not None else None), skipped
