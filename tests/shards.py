"""Test data at scale, made locally: webdataset shards (img2dataset's layout) and saved HF datasets."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from flava_kit.data.shards import write_shards
from flava_kit.data.sources import SyntheticSource


def synthetic_items(count: int, image_size: int = 32, seed: int = 0) -> list[dict]:
    source = SyntheticSource(count, image_size=image_size, seed=seed)
    return [source[i] for i in range(count)]


def make_shards(folder: Path, shards: int = 4, per_shard: int = 8, image_size: int = 32) -> str:
    """``shards`` tars of ``per_shard`` synthetic pairs; returns their brace pattern."""
    write_shards(synthetic_items(shards * per_shard, image_size), folder, per_shard=per_shard)
    return f"{folder}/{{00000..{shards - 1:05d}}}.tar"


def add_tar_member(tar_path: Path, name: str, data: bytes) -> None:
    """Append one file to a shard (a broken sample's image, a caption-less key)."""
    with tarfile.open(tar_path, "a") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
