"""CLIP_benchmark's webdataset layout (its ``clip-benchmark/wds_<name>`` datasets on the HF Hub), read natively.

A dataset is a folder, as ``clip_benchmark.datasets.builder.build_wds_dataset`` reads it and
``clip_benchmark.webdataset_builder`` (``clip_benchmark_export_wds``) writes it::

    classnames.txt                          one class name per line, line i for label i
    zeroshot_classification_templates.txt   one prompt per line, ``{c}`` where the class name goes
    dataset_type.txt                        ``retrieval`` for caption sets (absent: classification)
    test/nshards.txt                        how many shards the split has: test/0.tar .. test/{n-1}.tar
    test/0.tar ...
    train/...                               another split, alike

A sample is ``KEY.webp`` (or ``.png``, ``.jpg``, ``.jpeg``) with ``KEY.cls`` (an integer label) in a
classification set, or ``KEY.txt`` in a retrieval set: the image's captions, one per line (split
by ``str.splitlines``, as clip_benchmark splits them; COCO and Flickr30k have five). A
``webdataset`` source whose ``urls`` is such a folder (or a hub id whose snapshot is one) reads the
shards of its ``split`` and takes the class names, the prompts (``{c}`` turned into flava_kit's
``{}``) and, in a retrieval set, every caption from here; :func:`find_layout` is that hook.
Multilabel sets (``KEY.npy`` labels) are refused: no flava_kit task scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flava_kit.data.sources.base import DataError

CLASS_NAMES, TEMPLATES, DATASET_TYPE, NSHARDS = "classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt", "nshards.txt"
DEFAULT_SPLIT = "test"
DATASET_TYPES = ("classification", "retrieval")
"""The dataset types read; clip_benchmark reads an absent ``dataset_type.txt`` as classification."""


@dataclass(frozen=True)
class ClipBenchmarkLayout:
    """One split of a CLIP_benchmark folder: its ``shards`` (``SPLIT/0.tar`` ..), the ``dataset_type``,
    and, for classification, ``class_names`` and ``templates`` (each None when its file is absent)."""

    root: Path
    split: str
    dataset_type: str
    shards: list[str]
    class_names: list[str] | None
    templates: list[str] | None

    @property
    def retrieval(self) -> bool:
        """Whether samples hold captions (``KEY.txt``, one per line) rather than a label."""
        return self.dataset_type == "retrieval"

    def text_ext(self, given: str | None) -> str | None:
        """The text file a sample is read with: a classification set's samples hold none, so the
        source's default ``txt`` is not required of them (another extension, set on purpose, is)."""
        return None if not self.retrieval and given == "txt" else given

    def captions(self, data: bytes, where: str) -> dict:
        """``{"text": first caption, "captions": every caption}`` of a sample's caption file,
        line by line as clip_benchmark reads it (blank lines kept: they are its captions too)."""
        captions = data.decode("utf-8", errors="replace").splitlines()
        if not captions:
            raise DataError(f"{where}: its caption file is empty (a retrieval set's KEY.txt holds one caption per line)")
        return {"text": captions[0], "captions": captions}


def is_layout(folder: Path) -> bool:
    """Whether ``folder`` is laid out as CLIP_benchmark's datasets are (a split folder with ``nshards.txt``)."""
    return folder.is_dir() and any((split / NSHARDS).is_file() for split in folder.iterdir() if split.is_dir())


def find_layout(shards: list[str], split: str | None, owner: str) -> ClipBenchmarkLayout | None:
    """The layout of ``split`` (default ``test``) when ``shards`` is one CLIP_benchmark folder;
    None when it is not one (then ``split``, which only such a folder has, must be unset)."""
    folder = Path(shards[0]) if len(shards) == 1 else None
    if folder is None or not is_layout(folder):
        if split is not None:
            raise DataError(f"{owner}: split '{split}' is for a CLIP_benchmark folder (SPLIT/{NSHARDS} beside {CLASS_NAMES}), "
                            "but urls names shards; leave split unset, or point urls at the folder")  # fmt: skip
        return None
    split = split or DEFAULT_SPLIT
    count_file = folder / split / NSHARDS
    if not count_file.is_file():
        splits = sorted(p.name for p in folder.iterdir() if (p / NSHARDS).is_file())
        raise DataError(f"{owner}: {folder} has no split '{split}' ({count_file} is missing); its splits: {', '.join(splits)}")
    try:
        count = int(count_file.read_text().strip())
    except ValueError:
        raise DataError(f"{owner}: {count_file} should hold the split's number of shards, not {count_file.read_text()[:40]!r}") from None
    if count < 1:
        raise DataError(f"{owner}: {count_file} says the split has {count} shards")
    dataset_type = (folder / DATASET_TYPE).read_text().strip().lower() if (folder / DATASET_TYPE).is_file() else "classification"
    if dataset_type not in DATASET_TYPES:
        also = " (labels in KEY.npy, which no flava_kit task scores)" if dataset_type == "multilabel" else ""
        raise DataError(f"{owner}: {folder / DATASET_TYPE} says '{dataset_type}'{also}; flava_kit reads {' and '.join(DATASET_TYPES)} sets")
    class_names = templates = None
    if dataset_type == "classification":  # clip_benchmark reads no names or prompts for a retrieval set
        class_names = _lines(folder / CLASS_NAMES, owner)
        templates = _lines(folder / TEMPLATES, owner)
        if templates is not None:
            templates = [_template(line, folder / TEMPLATES, number, owner) for number, line in enumerate(templates, 1)]
    shard_files = [str(folder / split / f"{index}.tar") for index in range(count)]
    return ClipBenchmarkLayout(folder, split, dataset_type, shard_files, class_names, templates)


def _lines(path: Path, owner: str) -> list[str] | None:
    """The stripped lines of ``path`` (None when absent), as clip_benchmark reads them; blank lines at
    the end are dropped, one in the middle is an error: every line after it would name another class."""
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{owner}: {path} is empty")
    if "" in lines:
        raise DataError(f"{owner}: {path} line {lines.index('') + 1} is blank (line i names label i: a blank line shifts the rest)")
    return lines


def _template(line: str, path: Path, number: int, owner: str) -> str:
    """A CLIP_benchmark prompt (``a photo of a {c}.``) in flava_kit's form (``a photo of a {}.``)."""
    if "{c}" not in line:
        raise DataError(f"{owner}: {path} line {number} ({line!r}) has no '{{c}}' where the class name goes")
    return line.replace("{c}", "{}")
