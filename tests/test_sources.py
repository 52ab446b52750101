"""Data sources: the ``source`` kind, webdataset shards and saved HF datasets against their contract:
lanes split an epoch exactly, positions restore exactly, broken samples are counted or named."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flava_kit.data.sources import DataError, WebDatasetSource, hf_dataset
from flava_kit.registry import registry
from tests.shards import add_tar_member, make_shards, synthetic_items


def keys(source, lane=0, lanes=1, count=None, position=None, seed=0):
    stream = source.samples(lane, lanes, seed, position)
    return [source.decode(raw)["key"] for raw, _ in itertools.islice(stream, count)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    return make_shards(tmp_path_factory.mktemp("shards"), shards=4, per_shard=8)


def test_sources_are_a_registry_kind_with_the_built_ins():
    names = {entry.name for entry in registry.list("source")}
    assert {"synthetic", "manifest", "image_folder", "labelled_folder", "text_lines", "webdataset", "hf_dataset"} <= names


def test_an_epoch_reads_every_sample_once_in_a_shuffled_order(shards):
    source = WebDatasetSource(shards, shuffle=5)
    first, second = keys(source, count=32), keys(source, count=64)[32:]
    assert len(set(first)) == 32 and set(first) == set(second) and first != second
    assert len(source) == 32  # from sizes.json
    unshuffled = WebDatasetSource(shards, shuffle=0, shard_shuffle=False)
    assert keys(unshuffled, count=32) == [item["key"].replace("/", "_") for item in synthetic_items(32)]


@pytest.mark.parametrize("lanes", [2, 4])
def test_lanes_split_each_epoch_without_overlap(shards, lanes):
    source = WebDatasetSource(shards)
    per_lane = [keys(source, lane, lanes, count=32 // lanes) for lane in range(lanes)]
    assert sorted(itertools.chain(*per_lane)) == sorted(keys(source, count=32))


def test_fewer_shards_than_readers_is_a_clear_error(shards):
    with pytest.raises(DataError, match=r"4 shards to split over 8 readers \(ranks x data.workers\)"):
        next(WebDatasetSource(shards).samples(0, 8, 0))
    assert len(keys(WebDatasetSource(shards, resampled=True), 7, 8, count=20)) == 20  # resampled: draws with replacement


@settings(max_examples=15, deadline=None)
@given(skip=st.integers(0, 70), lane=st.integers(0, 1), resampled=st.booleans())
def test_a_position_continues_exactly_where_it_was_taken(shards, skip, lane, resampled):
    source = WebDatasetSource(shards, shuffle=6, resampled=resampled)
    stream = list(itertools.islice(source.samples(lane, 2, 3), skip + 10))
    position = stream[skip - 1][1] if skip else None
    resumed = [source.decode(raw)["key"] for raw, _ in itertools.islice(source.samples(lane, 2, 3, position), 10)]
    assert resumed == [source.decode(raw)["key"] for raw, _ in stream[skip:]]
    assert json.loads(json.dumps(position)) == position  # a checkpoint can hold it


def test_pipe_urls_and_info_json(shards, tmp_path):
    folder = Path(shards.split("{")[0])
    piped = WebDatasetSource([f"pipe:cat {folder}/0000{i}.tar" for i in range(4)], shuffle=0, shard_shuffle=False)
    assert keys(piped, count=32) == keys(WebDatasetSource(shards, shuffle=0, shard_shuffle=False), count=32)
    make_shards(tmp_path, shards=2, per_shard=3)
    (tmp_path / "sizes.json").unlink()
    (tmp_path / "_info.json").write_text(json.dumps({"shardlist": [{"url": "00000.tar", "nsamples": 3}, {"url": "00001.tar", "nsamples": 3}]}))
    assert len(WebDatasetSource(f"{tmp_path}/{{00000..00001}}.tar")) == 6
    with pytest.raises(DataError, match="1 of 3 shards not found"):
        WebDatasetSource(f"{tmp_path}/{{00000..00002}}.tar")


def test_broken_samples_are_counted_or_named_with_shard_and_key(tmp_path):
    from tests.test_data import make_batches, take
    from flava_kit.data.synthetic import vocabulary
    from flava_kit.data.tokenizer import tokenizer_from_words

    make_shards(tmp_path, shards=2, per_shard=4)
    add_tar_member(tmp_path / "00000.tar", "badimage.jpg", b"not a jpeg")
    add_tar_member(tmp_path / "00000.tar", "badimage.txt", b"a red circle")
    add_tar_member(tmp_path / "00001.tar", "nocaption.jpg", (tmp_path / "00000.tar").read_bytes()[:10])
    source = WebDatasetSource(f"{tmp_path}/{{00000..00001}}.tar", shuffle=0, shard_shuffle=False)
    tokenizer = tokenizer_from_words(vocabulary(), None)
    batches = take(make_batches({"web": source}, tokenizer, batch_size=8), 0, 2)  # an epoch: 8 good, 2 broken
    assert sorted(batches[0]["keys"]) == sorted(f"synthetic_0_{i:08d}" for i in range(8)) and batches[1]["data_position"]["skipped"] == 3
    with pytest.raises(DataError, match=r"00000\.tar key badimage: unreadable image"):
        take(make_batches({"web": source}, tokenizer, batch_size=8, strict=True))
    make_shards(tmp_path / "cut", shards=1, per_shard=8)
    whole = (tmp_path / "cut" / "00000.tar").read_bytes()
    (tmp_path / "cut" / "00000.tar").write_bytes(whole[: len(whole) * 6 // 10 + 100])  # truncated mid-member
    cut = WebDatasetSource(f"{tmp_path}/cut/00000.tar", shuffle=0)
    assert take(make_batches({"web": cut}, tokenizer, batch_size=4), 0, 2)[1]["data_position"]["skipped"] == 2  # a torn sample, the shard
    with pytest.raises(DataError, match=r"cut/00000\.tar key synthetic_0_00000005: no image"):
        take(make_batches({"web": cut}, tokenizer, batch_size=4, strict=True), 0, 2)


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory) -> Path:
    import datasets

    folder = tmp_path_factory.mktemp("hf")
    items = synthetic_items(12)
    features = datasets.Features({"picture": datasets.Image(), "caption": datasets.Value("string"), "id": datasets.Value("string")})
    table = {"picture": [i["image"] for i in items], "caption": [i["text"] for i in items], "id": [i["key"] for i in items]}
    dataset = datasets.Dataset.from_dict(table, features=features)
    dataset.save_to_disk(str(folder / "saved"))
    dataset.select(range(6)).to_parquet(str(folder / "part-0.parquet"))
    dataset.select(range(6, 12)).to_parquet(str(folder / "part-1.parquet"))
    return folder


def test_hf_dataset_saved_to_disk_with_its_column_names(saved_dataset):
    source = hf_dataset(str(saved_dataset / "saved"), image_column="picture", text_column="caption", key_column="id")
    item = source.decode(next(source.samples(0, 1, 0))[0])
    assert item["image"].size == (32, 32) and isinstance(item["text"], str) and item["key"].startswith("synthetic/")
    assert sorted(keys(source, count=12)) == sorted(i["key"] for i in synthetic_items(12))
    with pytest.raises(DataError, match=r"no column 'text' \(text_column\); its columns are picture, caption, id"):
        hf_dataset(str(saved_dataset / "saved"), image_column="picture")


def test_hf_dataset_parquet_files_streamed_as_shards_or_opened_whole(saved_dataset):
    pattern = str(saved_dataset / "part-*.parquet")
    whole = hf_dataset(pattern, image_column="picture", text_column="caption", key_column="id")
    streamed = hf_dataset(pattern, image_column="picture", text_column="caption", key_column="id", streaming=True, shuffle=3)
    lanes = [keys(streamed, lane, 2, count=6) for lane in range(2)]
    assert sorted(itertools.chain(*lanes)) == sorted(keys(whole, count=12))
    position = list(itertools.islice(streamed.samples(1, 2, 0), 4))[-1][1]
    assert keys(streamed, 1, 2, count=2, position=position) == keys(streamed, 1, 2, count=6)[4:]
    with pytest.raises(DataError, match="neither a save_to_disk folder nor parquet/arrow files"):
        hf_dataset(str(saved_dataset / "nothing-*.parquet"))


def test_a_plug_in_source_feeds_a_pretraining_run(tmp_path):
    from flava_kit.train.data_state import read_keys
    from flava_kit.train.run import pretrain

    assert registry.describe("source", "word_captions").provenance.distribution == "flava_kit_demo_plugin"
    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    overrides = ["data.sources.captions={type: word_captions, words: [red, blue, circle, square], weight: 1.0}",
                 "train.eval=null", "train.record_keys=true", "train.steps=6"]  # fmt: skip
    run = pretrain(recipe, overrides, run_dir=tmp_path)
    keys = [key for step in read_keys(tmp_path).values() for key in step]
    assert run.step == 6 and any(k.startswith("caption-") for k in keys) and any(k.startswith("synthetic/") for k in keys)
