"""What every source shares: the error for a broken item, image opening, and the indexed-source base."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from PIL import Image

from flava_kit.errors import FlavaKitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class DataError(FlavaKitError, ValueError):
    """One data item (or shard) cannot be read; the message says which file, shard or key."""


@dataclass(frozen=True)
class Broken:
    """Yielded by ``samples`` in place of a raw sample that could not even be read (a truncated
    shard): the batch builder counts it as skipped, or raises ``message`` with ``strict``."""

    message: str


def open_image(data: str | Path | bytes, where: str) -> Image.Image:
    """An RGB PIL image from a path or encoded bytes, or a :class:`DataError` naming ``where``."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()  # decode now, inside the try: a truncated file fails here, naming itself
            return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{where}: unreadable image ({exc})") from exc


def lane_share(count: int, noun: str, lane: int, lanes: int, owner: str) -> None:
    """Refuse splitting ``count`` shards (or items) over more ``lanes`` than there are: some lane
    would get nothing, and a rank would hang or another see samples twice."""
    if lanes > count:
        raise DataError(f"{owner}: {count} {noun} to split over {lanes} readers (ranks x data.workers); "
                        f"use fewer data.workers or ranks, or at least {lanes} {noun}")  # fmt: skip
    if not 0 <= lane < lanes:
        raise ValueError(f"lane {lane} is not in 0..{lanes - 1}")


def mixed_seed(*parts: int) -> int:
    """One seed from several integers (data seed, epoch, lane, ...), the same on every rank."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part)) % (1 << 62)
    return seed


def permutation(count: int, *seed_parts: int) -> list[int]:
    """A permutation of ``range(count)``, a pure function of ``seed_parts`` (the same on every rank)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(mixed_seed(*seed_parts))).tolist()


class IndexedSource:
    """A source with random access (``__len__`` and ``read(index) -> item``).

    Each epoch is a fresh permutation of the items (from the data seed and the epoch); lane ``i``
    of ``n`` reads every ``n``-th item of it, so the lanes of an epoch see each item once. Its
    position is ``{"epoch", "offset"}`` into the lane's share: restoring one costs nothing.
    """

    weight: float = 1.0

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> dict:
        """Item ``index``: a dict with ``key``, ``image`` and/or ``text``, maybe ``label``."""
        raise NotImplementedError

    def samples(self, lane: int, lanes: int, seed: int, position: dict | None = None) -> Iterator[tuple[int, dict]]:
        """Item indices of this lane, epoch after epoch, each with the position after it."""
        lane_share(len(self), "items", lane, lanes, type(self).__name__)
        epoch, offset = (position or {}).get("epoch", 0), (position or {}).get("offset", 0)
        while True:
            share = permutation(len(self), seed, epoch)[lane::lanes]
            for index in range(offset, len(share)):
                yield share[index], {"epoch": epoch, "offset": index + 1}
            epoch, offset = epoch + 1, 0

    def decode(self, raw: Any) -> dict:
        """The item at index ``raw``."""
        return self.read(raw)

    def __getitem__(self, index: int) -> dict:
        return self.read(index)
