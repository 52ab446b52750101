"""Reading what to embed or evaluate: an image folder, an image-text manifest, or a text file,
each item with a stable key (the file's relative path, the manifest line, the text line)."""

from __future__ import annotations

from typing import Any

from flava_kit.data.sources import DataError, ImageFolder, ImageTextManifest, TextLines
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
