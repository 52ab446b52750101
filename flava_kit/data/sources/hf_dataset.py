"""``hf_dataset``: a local dataset made with HF ``datasets``: a ``save_to_disk`` folder, or parquet/arrow files."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Annotated, Any, Iterator

from pydantic import Field

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.data.sources.sharded import ShardedSource
from flava_kit.registry import register

FILE_FORMATS = {".parquet": "parquet", ".arrow": "arrow"}


class _Columns:
    """Turns a row into an item by the configured column names."""

    def __init__(self, image: str | None, text: str | None, label: str | None, key: str | None, where: str):
        self.image, self.text, self.label, self.key, self.where = image, text, label, key, where

    def check(self, names: list[str]) -> None:
        """Every configured column must exist: a typo fails at build time, naming the columns there are."""
        for role, column in (("image_column", self.image), ("text_column", self.text), ("label_column", self.label), ("key_column", self.key)):
            if column is not None and column not in names:
                raise DataError(f"{self.where}: no column '{column}' ({role}); its columns are {', '.join(names)}")

    def item(self, row: dict, fallback_key: str) -> dict:
        key = str(row[self.key]) if self.key else fallback_key
        where = f"{self.where} row {key}"
        item: dict[str, Any] = {"key": key}
        if self.image is not None:
            value = row[self.image]
            if hasattr(value, "convert"):  # datasets' Image feature decodes to PIL
                item["image"] = value.convert("RGB")
            elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
                item["image"] = open_image(value.get("bytes") or value["path"], where)
            elif isinstance(value, (bytes, str)):
                item["image"] = open_image(value, where)
            else:
                raise DataError(f"{where}: column '{self.image}' holds no image ({type(value).__name__})")
        if self.text is not None:
            if not isinstance(row[self.text], str):
                raise DataError(f"{where}: column '{self.text}' holds no text ({row[self.text]!r})")
            item["text"] = row[self.text]
        if self.label is not None:
            item["label"] = int(row[self.label])
        return item


def _files(path: str) -> list[str]:
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    unknown = [f for f in files if Path(f).suffix not in FILE_FORMATS]
    if not files or unknown:
        raise DataError(f"hf_dataset: '{path}' is neither a save_to_disk folder nor parquet/arrow files")
    return files


class _InMemory(IndexedSource):
    """A dataset opened (memory-mapped) as a whole: random access."""

    def __init__(self, dataset: Any, columns: _Columns, weight: float):
        self.dataset, self.columns, self.weight = dataset, columns, weight
        columns.check(list(dataset.column_names))

    def __len__(self) -> int:
        return len(self.dataset)

    def read(self, index: int) -> dict:
        return self.columns.item(self.dataset[int(index)], f"{index}")


class _Streamed(ShardedSource):
    """Parquet/arrow files streamed file by file (each file a shard): for data larger than memory."""

    def __init__(self, files: list[str], columns: _Columns, shuffle: int, weight: float):
        self.shards, self.columns, self.shuffle, self.weight = files, columns, shuffle, weight
        columns.check(list(self._open(files[0]).column_names or []))

    @staticmethod
    def _open(path: str) -> Any:
        import datasets

        return datasets.load_dataset(FILE_FORMATS[Path(path).suffix], data_files=[path], split="train", streaming=True)

    def read_shard(self, shard: str) -> Iterator[tuple[str, dict]]:
        for index, row in enumerate(self._open(shard)):
            yield f"{Path(shard).name}:{index}", row

    def decode(self, raw: tuple[str, dict]) -> dict:
        return self.columns.item(raw[1], raw[0])


@register("source", "hf_dataset")
def hf_dataset(path: str, *, split: str = "train", image_column: str | None = "image", text_column: str | None = "text",
               label_column: str | None = None, key_column: str | None = None, streaming: bool = False,
               shuffle: Annotated[int, Field(ge=0, le=1 << 20)] = 1000, weight: Weight = 1.0) -> Any:  # fmt: skip
    """A dataset saved with HF ``datasets``: ``path`` is a ``save_to_disk`` folder (its ``split`` when
    it holds several), or parquet/arrow files (a path or a glob). Set a column to null for
    image-only or text-only data; keys come from ``key_column``, else the row number.

    Opened whole it is memory-mapped, so it may exceed memory; ``streaming: true`` instead reads
    parquet/arrow files one after another (each file a shard, through a ``shuffle`` buffer, like
    webdataset shards) without converting them first. Nothing is downloaded.
    """
    import datasets

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local data only: never ask the Hub
    columns = _Columns(image_column, text_column, label_column, key_column, path)
    folder = Path(path)
    if folder.is_dir():
        if streaming:
            raise DataError(f"hf_dataset: {path} is a save_to_disk folder (memory-mapped already); streaming reads parquet/arrow files")
        try:
            dataset = datasets.load_from_disk(str(folder))
        except FileNotFoundError as exc:
            raise DataError(f"hf_dataset: {path} is not a folder written by save_to_disk ({exc})") from exc
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise DataError(f"hf_dataset: {path} has splits {', '.join(dataset)}, not '{split}'")
            dataset = dataset[split]
        return _InMemory(dataset, columns, weight)
    files = _files(path)
    if streaming:
        return _Streamed(files, columns, shuffle, weight)
    return _InMemory(datasets.load_dataset(FILE_FORMATS[Path(files[0]).suffix], data_files=files, split="train"), columns, weight)
