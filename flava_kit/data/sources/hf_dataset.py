"""``hf_dataset``: a dataset made with HF ``datasets``: a ``save_to_disk`` folder, parquet/arrow files,
or an HF Hub dataset repo (``org/name[@revision]``) read from huggingface_hub's cache."""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Iterator

from pydantic import Field

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import DataError, IndexedSource, open_image
from flava_kit.data.sources.fields import Fields, read_class_names
from flava_kit.data.sources.sharded import ShardedSource
from flava_kit.hub import is_hub_id
from flava_kit.registry import register

FILE_FORMATS = {".parquet": "parquet", ".arrow": "arrow"}


class _Columns:
    """Turns a row into an item by the configured column names: the shared :class:`Fields`, plus
    what is HF's own: the key column, and the values an image column may hold."""

    def __init__(self, fields: Fields, key: str | None, where: str):
        self.fields, self.key, self.where = fields, key, where

    def check(self, names: list[str], features: Any) -> list[str] | None:
        """Every configured column must exist: a typo fails at build time, naming the columns there
        are. Returns the class names: those given, else the label column's when it is a
        ``ClassLabel`` feature (GLUE's, ImageNet's), which then check the labels too; else None."""
        import datasets

        for setting, column in {**self.fields.settings(), "key_column": self.key}.items():
            if column is not None and column not in names:
                raise DataError(f"{self.where}: no column '{column}' ({setting}); its columns are {', '.join(names)}")
        label = self.fields.names.get("label")
        feature = (features or {}).get(label) if label is not None else None
        if self.fields.class_names is None and isinstance(feature, datasets.ClassLabel):
            self.fields = replace(self.fields, class_names=tuple(feature.names))
        return None if self.fields.class_names is None else list(self.fields.class_names)

    def item(self, row: dict, fallback_key: str) -> dict:
        key = str(row[self.key]) if self.key else fallback_key
        return self.fields.item(row, key, f"{self.where} row {key}", image=self.image)

    def image(self, value: Any, where: str) -> Any:
        if hasattr(value, "convert"):  # datasets' Image feature decodes to PIL
            return value.convert("RGB")
        if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
            return open_image(value.get("bytes") or value["path"], where)
        if isinstance(value, (bytes, str)):
            return open_image(value, where)
        raise self.fields.problem(where, "image", f"holds no image ({type(value).__name__})")


def _hub_dataset(reference: str, config: str | None, split: str) -> tuple[Any, list[str]]:
    """A builder of ``split`` of ``reference``'s ``config`` (a hub id, resolved once, here, to its
    snapshot folder) and that split's data files, parsed by ``datasets`` as ``load_dataset`` does: a
    README's ``configs:`` (GLUE's ``cola``, ``sst2``), else one config of the whole repo (``data/``,
    ``SPLIT-*.parquet``), where ``config`` may name a folder of it (``CONFIG/SPLIT-*.parquet``).
    The builder holds that split's files alone, so preparing it converts no other split."""
    import datasets

    from flava_kit.hub import resolve

    snapshot = resolve(reference, "hf_dataset path", repo_type="dataset")
    where = f"hf_dataset: {reference} ({snapshot})"
    try:
        configs = datasets.get_dataset_config_names(str(snapshot))
        declared = configs != ["default"]  # a README's configs: block (the Hub's own layout)
        if config is not None and config not in configs and (declared or not (snapshot / config).is_dir()):
            raise DataError(f"{where}: no config '{config}'; its configs are {', '.join(configs)}")
        if config is None and len(configs) > 1:
            raise DataError(f"{where} has configs {', '.join(configs)}: set config to one of them")
        folder = config if config is not None and config not in configs else None  # CONFIG/ with no README: that folder's files
        builder = datasets.load_dataset_builder(str(snapshot), name=None if folder else config, data_dir=folder)
    except DataError:
        raise
    except Exception as exc:  # datasets' own: a broken README, files it cannot read
        raise DataError(f"{where}: datasets cannot read it ({type(exc).__name__}: {' '.join(str(exc).split())})") from exc
    files = {str(name): [str(f) for f in group] for name, group in (builder.config.data_files or {}).items()}
    if split not in files:
        raise DataError(f"{where}{f' config {config}' if config else ''} has splits {', '.join(files) or 'none'}, not '{split}'")
    if config is None and not declared:  # one config over the whole repo: a split's files in folders of configs would be mixed
        tops = sorted({Path(f).parent.relative_to(snapshot).parts[0] for f in files[split] if Path(f).parent != snapshot
                       and Path(f).is_relative_to(snapshot)} - {"data"})  # fmt: skip
        if len(tops) > 1:
            raise DataError(f"{where}: split '{split}' has files in folders {', '.join(tops)}: set config to one of them")
    name = None if folder else config  # the config's features and settings, its split's files alone
    return datasets.load_dataset_builder(str(snapshot), name=name, data_files={split: files[split]}), files[split]


def _files(path: str) -> list[str]:
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    unknown = [f for f in files if Path(f).suffix not in FILE_FORMATS]
    if not files or unknown:
        raise DataError(f"hf_dataset: '{path}' is neither a save_to_disk folder nor parquet/arrow files, "
                        "nor an HF Hub dataset id (org/name)")  # fmt: skip
    return files


def _formats(files: list[str], reference: str) -> list[str]:
    """``files`` when streaming can read them all (parquet/arrow, a file a shard)."""
    other = [f for f in files if Path(f).suffix not in FILE_FORMATS]
    if other:
        raise DataError(f"hf_dataset: {reference}: streaming reads parquet/arrow files, not {Path(other[0]).name}")
    return files


class _InMemory(IndexedSource):
    """A dataset opened (memory-mapped) as a whole: random access."""

    def __init__(self, dataset: Any, columns: _Columns, weight: float):
        self.dataset, self.columns, self.weight = dataset, columns, weight
        names = columns.check(list(dataset.column_names), dataset.features)
        if names is not None:
            self.class_names = names  # what tasks read (source.class_names)

    def __len__(self) -> int:
        return len(self.dataset)

    def read(self, index: int) -> dict:
        return self.columns.item(self.dataset[int(index)], f"{index}")


class _Streamed(ShardedSource):
    """Parquet/arrow files streamed file by file (each file a shard): for data larger than memory."""

    def __init__(self, files: list[str], columns: _Columns, shuffle: int, weight: float):
        self.shards, self.columns, self.shuffle, self.weight = files, columns, shuffle, weight
        self.owner = f"hf_dataset {columns.where} (streaming)"
        first = self._open(files[0])
        names = columns.check(list(first.column_names or []), first.features)
        if names is not None:
            self.class_names = names  # what tasks read (source.class_names)

    @staticmethod
    def _open(path: str) -> Any:
        import datasets

        return datasets.load_dataset(FILE_FORMATS[Path(path).suffix], data_files=[path], split="train", streaming=True)

    def read_shard(self, shard: str) -> Iterator[tuple[str, dict]]:
        # Through ``iter``, not the dataset's own iterator: inside a DataLoader worker that one
        # splits the dataset's shards (this one file) among the workers again, so every worker
        # but the first read nothing. Our lanes already gave this file to this reader, whole.
        batches = self._open(shard).iter(batch_size=64)
        rows = (dict(zip(batch, values)) for batch in batches for values in zip(*batch.values()))
        for index, row in enumerate(rows):
            yield f"{Path(shard).name}:{index}", row

    def decode(self, raw: tuple[str, dict]) -> dict:
        return self.columns.item(raw[1], raw[0])


@register("source", "hf_dataset")
def hf_dataset(path: str, *, config: str | None = None, split: str = "train", image_column: str | None = "image",
               text_column: str | None = "text", text_pair_column: str | None = None, label_column: str | None = None, answers_column: str | None = None,
               class_names: list[str] | str | None = None, key_column: str | None = None, streaming: bool = False,
               shuffle: Annotated[int, Field(ge=0, le=1 << 20)] = 1000, weight: Weight = 1.0) -> Any:  # fmt: skip
    """A dataset made with HF ``datasets``: ``path`` is a ``save_to_disk`` folder (its ``split`` when
    it holds several), parquet/arrow files (a path or a glob), or an HF Hub dataset repo
    ``org/name[@revision]`` (e.g. ``nyu-mll/glue``). Keys come from ``key_column``, else the row
    number.

    A hub id is read from the snapshot in huggingface_hub's cache (``$HF_HUB_CACHE/datasets--org--name``;
    downloaded unless ``HF_HUB_OFFLINE=1``; one not cached offline is an error naming the id, the
    cache and the ``hf download --repo-type dataset`` command). ``config`` and ``split`` pick the
    data as ``datasets.load_dataset(path, config, split=split)`` does: a README's ``configs:``
    (GLUE's ``sst2``), or a folder of the repo (``CONFIG/SPLIT-*.parquet``); ``config`` may be
    left out when the repo has one.

    An item's fields come from the ``*_column`` settings: ``image_column``, ``text_column`` (a
    caption, or a VQA question), ``text_pair_column`` (a second text: MNLI's hypothesis),
    ``label_column`` (an integer, or a name of ``class_names``: a list, or a file with one per
    line; a ``ClassLabel`` column brings its own names) and ``answers_column`` (every annotator's
    answer: a list of strings, or HF's VQAv2 list of ``{"answer": ...}`` dicts); see
    :mod:`~flava_kit.data.sources.fields`. A column set to null is not read (image-only or
    text-only data); a column that is not there fails at build time, a row missing a value
    (but a label: none, or -1, is no label) when it is read.

    Opened whole it is memory-mapped, so it may exceed memory; ``streaming: true`` instead reads
    parquet/arrow files one after another (each file a shard, through a ``shuffle`` buffer, like
    webdataset shards) without converting them first. Nothing is downloaded but a hub id's snapshot.
    """
    import datasets

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local data only: never ask the Hub
    if image_column is None and text_column is None:
        raise DataError(f"hf_dataset: {path}: image_column and text_column are both null: its items would hold neither image nor text")
    names = read_class_names(class_names, f"hf_dataset: {path}")
    roles = {"image": image_column, "text": text_column, "text_pair": text_pair_column, "label": label_column, "answers": answers_column}
    fields = Fields(roles, class_names=None if names is None else tuple(names), spelled="column '{}'", setting="{}_column")
    columns = _Columns(fields, key_column, path)
    folder = Path(path)
    if is_hub_id(path):
        builder, files = _hub_dataset(path, config, split)
        if streaming:
            return _Streamed(_formats(files, path), columns, shuffle, weight)
        builder.download_and_prepare()  # what load_dataset does: the split's files as one memory-mapped arrow table
        return _InMemory(builder.as_dataset(split=split), columns, weight)
    if config is not None:
        raise DataError(f"hf_dataset: {path}: config picks a config of an HF Hub dataset repo (org/name); a local dataset has none")
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
