"""Writing webdataset shards in img2dataset's layout (``KEY.jpg``, ``KEY.txt``, ``KEY.json``, and
``KEY.cls`` for labelled items), with a ``sizes.json`` beside them: to turn any source into
shards, and for tests and benchmarks to make theirs locally."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable


def write_shards(items: Iterable[dict], folder: str | Path, per_shard: int = 1000, quality: int = 90) -> list[Path]:
    """Write ``items`` (dicts with ``key``, ``image`` (PIL), ``text``, maybe ``label``) into
    ``folder/00000.tar``, ``00001.tar``, ... with ``per_shard`` samples each; return the shards."""
    import webdataset as wds

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    writer, shard = None, -1
    for index, item in enumerate(items):
        if index % per_shard == 0:
            if writer is not None:
                writer.close()
            shard += 1
            writer = wds.TarWriter(str(folder / f"{shard:05d}.tar"))
        buffer = io.BytesIO()
        item["image"].save(buffer, format="JPEG", quality=quality)
        sample = {"__key__": item["key"].replace("/", "_").replace(".", "_"), "jpg": buffer.getvalue(), "txt": item["text"],
                  "json": json.dumps({"caption": item["text"], "key": item["key"]})}  # fmt: skip
        if item.get("label", -1) >= 0:
            sample["cls"] = str(item["label"])
        writer.write(sample)
        sizes[f"{shard:05d}.tar"] = sizes.get(f"{shard:05d}.tar", 0) + 1
    if writer is not None:
        writer.close()
    (folder / "sizes.json").write_text(json.dumps(sizes, indent=1))
    return [folder / name for name in sizes]
