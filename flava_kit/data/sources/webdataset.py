"""``webdataset``: tar shards in img2dataset's layout, read with the ``webdataset`` package.

A sample is the files of one key in a shard: ``KEY.jpg`` (or ``.jpeg``, ``.png``, ``.webp``),
``KEY.txt`` (the caption), optionally ``KEY.json`` (metadata, unused) and ``KEY.cls`` (an integer
label). Which file holds which item field is configurable by its extension: webdataset splits a
file name at its first dot (``KEY.answers.json`` is key ``KEY``, extension ``answers.json``,
lower-cased), so a sample may hold ``KEY.question.txt``, ``KEY.hypothesis.txt`` or
``KEY.answers.json`` beside its image (and a key itself holds no dot).

Shards are local paths, URLs webdataset opens, or ``pipe:COMMAND`` (the command's stdout is the
tar: remote storage through ``aws s3 cp ... -``, ``curl``, ``gsutil cat``, without flava_kit
knowing about it); a brace pattern (``shards/{00000..00099}.tar``) expands to many.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Iterator

from pydantic import Field

from flava_kit.constraints import Weight
from flava_kit.data.sources.base import Broken, DataError, open_image
from flava_kit.data.sources.clip_benchmark_layout import find_layout
from flava_kit.data.sources.fields import Fields, read_class_names
from flava_kit.data.sources.sharded import ShardedSource
from flava_kit.registry import register

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def expand_shards(urls: str | list[str]) -> list[str]:
    """A list of shard URLs from a brace pattern, ``::``-separated patterns, or a list of either."""
    from webdataset.shardlists import expand_urls

    patterns = [urls] if isinstance(urls, str) else list(urls)
    return [url for pattern in patterns for url in expand_urls(pattern)]


def local_urls(urls: str | list[str]) -> list[str]:
    """``urls`` as a list, local where they name a dataset: an HF Hub dataset id (``org/name[@revision]``)
    becomes its snapshot folder in huggingface_hub's cache (resolved here, where the reference
    enters: see :mod:`flava_kit.hub`), and a folder that holds ``*.tar`` files becomes those shards,
    in name order. Anything else (a brace pattern, a URL, ``pipe:``, a folder without shards) is
    left as it is."""
    from flava_kit.hub import is_hub_id, resolve

    local = []
    for url in [urls] if isinstance(urls, str) else urls:
        if is_hub_id(url):
            url = str(resolve(url, "webdataset urls", repo_type="dataset"))
        shards = sorted(str(shard) for shard in Path(url).glob("*.tar")) if Path(url).is_dir() else []
        local += shards or [url]
    return local


def epoch_size(shards: list[str]) -> int | None:
    """Samples per epoch from a ``sizes.json`` (``{shard file name: count}``, as open_clip reads it)
    or a ``_info.json`` (``{"shardlist": [{"url", "nsamples"}]}`` or ``{"total_size"}``) beside
    local shards; None when neither is there."""
    if not shards or shards[0].startswith("pipe:") or "://" in shards[0]:
        return None
    folder = Path(shards[0]).parent
    if (folder / "sizes.json").is_file():
        sizes = json.loads((folder / "sizes.json").read_text())
        return sum(int(sizes.get(Path(s).name, 0)) for s in shards)
    if (folder / "_info.json").is_file():
        info = json.loads((folder / "_info.json").read_text())
        if "shardlist" in info:
            sizes = {Path(entry["url"]).name: int(entry["nsamples"]) for entry in info["shardlist"]}
            return sum(sizes.get(Path(s).name, 0) for s in shards)
        return int(info["total_size"]) if "total_size" in info else None
    return None


@register("source", "webdataset")
class WebDatasetSource(ShardedSource):
    """Images with their texts, labels or answers from webdataset tar shards (img2dataset's layout), streamed.

    ``urls``: a brace pattern, a list of them, ``pipe:`` commands, a folder of ``*.tar`` shards, or
    an HF Hub dataset id ``org/name[@revision]`` (its snapshot folder in huggingface_hub's cache;
    offline, one not cached is an error naming the ``hf download`` command). ``shuffle``: the sample
    shuffle buffer (0: shard order); ``shard_shuffle``: a new shard order every epoch;
    ``resampled``: draw shards with replacement, forever.

    Every sample holds an image (the first of ``.jpg``, ``.jpeg``, ``.png``, ``.webp``); the file
    extensions of its other fields are settings: ``text_ext`` (the caption or a VQA question;
    null: image-only samples), ``text_pair_ext`` (a second text), ``label_ext`` (an integer, or a
    name of ``class_names``: a list, or a file with one per line) and ``answers_ext`` (a JSON list
    of every annotator's answer, e.g. ``answers.json``); see :mod:`~flava_kit.data.sources.fields`.
    Each file set is required but the label's.

    ``urls`` may also be a folder (or hub id) in CLIP_benchmark's layout (``clip-benchmark/wds_<name>``:
    ``SPLIT/nshards.txt``, ``classnames.txt``, ...; see :mod:`~flava_kit.data.sources.clip_benchmark_layout`):
    then ``split`` (default ``test``) picks the shards, the source's ``class_names`` and ``templates``
    are the dataset's (``class_names`` set here replaces its own), a classification set's samples
    need no text, and a retrieval set's items hold every caption (``captions``; ``text`` is the first).

    A corrupt image, a sample without a file it needs, or an unreadable shard is skipped and
    counted; with ``data.strict`` it stops the run, naming the shard, key and file. Items are keyed
    by img2dataset's ``__key__``.
    """

    def __init__(self, urls: str | list[str], *, split: str | None = None, text_ext: str | None = "txt", text_pair_ext: str | None = None,
                 label_ext: str | None = "cls", answers_ext: str | None = None, class_names: list[str] | str | None = None,
                 shuffle: Annotated[int, Field(ge=0, le=1 << 20)] = 1000, shard_shuffle: bool = True,
                 resampled: bool = False, weight: Weight = 1.0):  # fmt: skip
        self.shards = expand_shards(local_urls(urls))
        if not self.shards:
            raise DataError(f"webdataset: '{urls}' names no shard")
        self.layout = find_layout(self.shards, split, f"webdataset: {urls}")
        if self.layout is not None:  # CLIP_benchmark's wds_<name> folder: its split's shards, class names, prompts and captions
            self.shards, text_ext = self.layout.shards, self.layout.text_ext(text_ext)
            self.class_names, self.templates = self.layout.class_names, self.layout.templates
        names = read_class_names(class_names, f"webdataset: {urls}")
        if names is not None:
            self.class_names = names  # what tasks read (source.class_names)
        extensions = {"text": text_ext, "text_pair": text_pair_ext, "label": label_ext, "answers": answers_ext}
        roles = {role: _extension(ext) for role, ext in extensions.items()}
        self.fields = Fields(roles, class_names=None if names is None else tuple(names), spelled="file 'KEY.{}'", setting="{}_ext")
        local = [s for s in self.shards if not (s.startswith("pipe:") or "://" in s)]
        missing = [s for s in local if not Path(s).is_file()]
        if missing:
            raise DataError(f"webdataset: {len(missing)} of {len(self.shards)} shards not found, e.g. {missing[0]}")
        self.shuffle, self.shard_shuffle, self.resampled, self.weight = shuffle, shard_shuffle, resampled, weight
        self.size = epoch_size(self.shards)

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError("this webdataset has no sizes.json or _info.json: its epoch size is unknown")
        return self.size

    def read_shard(self, shard: str) -> Iterator[Any]:
        """The shard's samples (dicts of file bytes by extension), or a :class:`Broken` where it breaks."""
        from webdataset.tariterators import tarfile_samples

        errors: list[Exception] = []

        def keep_going(exc: Exception) -> bool:  # webdataset's handler: note it, end this shard
            errors.append(exc)
            return True

        for sample in tarfile_samples([{"url": shard}], handler=keep_going):
            yield sample
        if errors:  # one broken shard is one skip, however many times webdataset reported it
            yield Broken(f"{shard}: unreadable shard ({type(errors[0]).__name__}: {errors[0]})")

    def decode(self, raw: dict) -> dict:
        """An item: ``key``, ``image`` and a field for each configured file (``text`` from ``KEY.txt``, ``label`` from ``KEY.cls``, ...)."""
        key, where = raw["__key__"], f"{raw.get('__url__', '?')} key {raw['__key__']}"
        image = next((raw[ext] for ext in IMAGE_EXTENSIONS if ext in raw), None)
        if image is None:
            raise DataError(f"{where}: no image (.{', .'.join(IMAGE_EXTENSIONS)})")
        files = {ext: raw[ext].decode("utf-8", errors="replace").strip() for ext in self.fields.configured().values() if ext in raw}
        fields = self.fields.item(files, key, where)  # before the image: a missing text fails without decoding it
        if self.layout is not None and self.layout.retrieval and "text" in fields:  # a caption set's KEY.txt: a caption a line
            fields.update(self.layout.captions(raw[self.fields.names["text"]], where))
        return {"key": key, "image": open_image(image, where), **{role: value for role, value in fields.items() if role != "key"}}


def _extension(ext: str | None) -> str | None:
    """A file extension as webdataset's samples hold it: lower-cased, without a leading dot."""
    return None if ext is None else ext.lower().lstrip(".")
