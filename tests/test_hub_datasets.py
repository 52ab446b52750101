"""HF Hub dataset ids in sources, read offline from a real huggingface_hub cache layout built here.

A parquet dataset repo (two configs, two splits each, GLUE's layout: ``CONFIG/SPLIT-*.parquet``
with a README ``configs:`` block) and a webdataset repo (tar shards) are written with ``datasets``
and ``webdataset``, laid out as huggingface_hub lays out a download (``datasets--org--name/blobs``,
``snapshots/REV`` of links into them, ``refs/main``), checked with huggingface_hub's own cache
scanner, then evaluated and trained on by id through the ``flava-kit`` CLI.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import flava_kit
from flava_kit.cli import main
from shards import synthetic_items

TINY = Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml"
REVISION = "0123456789abcdef0123456789abcdef01234567"
OLD_REVISION = "fedcba9876543210fedcba9876543210fedcba98"
GLUE_README = """---
configs:
{}
---
# testorg/shapes: synthetic shapes in GLUE's layout
"""


def place_in_cache(cache: Path, repo_type: str, repo: str, folder: Path, revision: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """``folder``'s files as huggingface_hub stores a download: content-addressed blobs, the
    snapshot ``revision`` of relative links into them, and ``refs/NAME`` holding the revision."""
    root = cache / f"{repo_type}s--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = root / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, blob)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (root / "refs" / ref).write_text(revision)
    return snapshot


def write_parquet_repo(folder: Path, items: list[dict], readme: bool = True) -> None:
    """Two configs (``labelled``: image, text, a ClassLabel; ``captions``: image and caption) and two
    splits each (``train``, ``validation``), as parquet written by ``datasets``."""
    import datasets

    from flava_kit.data.synthetic import class_names

    labelled = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=class_names()), "idx": datasets.Value("int32")})  # fmt: skip
    halves = {"train": items[: len(items) // 2], "validation": items[len(items) // 2 :]}
    blocks = []
    for config in ("labelled", "captions"):
        for split, part in halves.items():
            table = {"image": [i["image"] for i in part], "text": [i["text"] for i in part], "idx": list(range(len(part)))}
            if config == "labelled":
                dataset = datasets.Dataset.from_dict({**table, "label": [i["label"] for i in part]}, features=labelled)
            else:
                dataset = datasets.Dataset.from_dict({"image": table["image"], "caption": table["text"], "idx": table["idx"]})
            path = folder / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            dataset.to_parquet(str(path))
        files = "\n".join(f"  - split: {split}\n    path: {config}/{split}-*" for split in halves)
        blocks.append(f"- config_name: {config}\n  data_files:\n{files}")
    if readme:
        (folder / "README.md").write_text(GLUE_README.format("\n".join(blocks)))


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    """A hub cache holding ``testorg/shapes`` (parquet, configs ``labelled`` and ``captions``, at
    REVISION with ``refs/main``, and an older revision with only ``labelled``'s train split, tagged
    ``v0``), ``testorg/shapes-folders`` (the same configs as folders, no README),
    ``testorg/shapes-wds`` (tar shards) and the model ``testorg/tiny-flava``."""
    from flava_kit.data.shards import write_shards
    from flava_kit.data.tokenizer import run_tokenizer

    root, cache = tmp_path_factory.mktemp("repos"), tmp_path_factory.mktemp("hub")
    items = [item for item in synthetic_items(80) if item["label"] >= 0][:24]
    write_parquet_repo(root / "shapes", items)
    place_in_cache(cache, "dataset", "testorg/shapes", root / "shapes", REVISION)
    write_parquet_repo(root / "old", items[:8])
    shutil.rmtree(root / "old" / "captions")
    (root / "old" / "labelled" / "validation-00000-of-00001.parquet").unlink()
    (root / "old" / "README.md").write_text(GLUE_README.format("- config_name: labelled\n  data_files: labelled/train-*"))
    place_in_cache(cache, "dataset", "testorg/shapes", root / "old", OLD_REVISION, refs=("v0",))
    write_parquet_repo(root / "folders", items, readme=False)
    place_in_cache(cache, "dataset", "testorg/shapes-folders", root / "folders", REVISION)
    write_shards(items, root / "wds", per_shard=8)  # webdataset.TarWriter: 00000.tar .. 00002.tar
    place_in_cache(cache, "dataset", "testorg/shapes-wds", root / "wds", REVISION)
    torch.manual_seed(0)
    flava_kit.save_pretrained(flava_kit.build("flava_tiny"), root / "model")
    run_tokenizer(None).save_pretrained(str(root / "model"))
    place_in_cache(cache, "model", "testorg/tiny-flava", root / "model", REVISION)
    return cache


@pytest.fixture
def offline_hub(hub, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cache_is_laid_out_as_huggingface_hub_reads_it(offline_hub):
    from huggingface_hub import scan_cache_dir

    repos = {(repo.repo_type, repo.repo_id): repo for repo in scan_cache_dir(offline_hub).repos}
    assert set(repos) == {("dataset", "testorg/shapes"), ("dataset", "testorg/shapes-folders"), ("dataset", "testorg/shapes-wds"),
                          ("model", "testorg/tiny-flava")}  # fmt: skip
    shapes = repos[("dataset", "testorg/shapes")]
    assert {r.commit_hash: set(r.refs) for r in shapes.revisions} == {REVISION: {"main"}, OLD_REVISION: {"v0"}}


def test_configs_splits_and_revisions_by_id(offline_hub):
    from flava_kit.data.sources import hf_dataset
    from flava_kit.data.synthetic import class_names

    validation = hf_dataset("testorg/shapes", config="labelled", split="validation", label_column="label", key_column="idx")
    assert len(validation) == 12 and validation.class_names == class_names()  # the ClassLabel's names came through parquet
    item = validation.read(0)
    assert item["key"] == "0" and item["image"].size == (32, 32) and 0 <= item["label"] < len(class_names())
    captions = hf_dataset("testorg/shapes", config="captions", split="train", text_column="caption")
    assert len(captions) == 12 and captions.read(0)["text"] == synthetic_items(80)[0]["text"]
    # the same split from the folders repo (CONFIG/ without a README), streamed
    streamed = hf_dataset("testorg/shapes-folders", config="labelled", split="validation", label_column="label", streaming=True)
    texts = [streamed.decode(raw)["text"] for raw, _ in itertools.islice(streamed.samples(0, 1, 0), 12)]
    assert sorted(texts) == sorted(validation.read(i)["text"] for i in range(12))
    assert len(hf_dataset("testorg/shapes@v0", config="labelled", label_column="label")) == 4
    assert len(hf_dataset(f"testorg/shapes@{REVISION}", config="labelled", label_column="label")) == 12


@pytest.mark.parametrize(("reference", "settings", "message"), [
    ("testorg/shapes", {}, r"has configs labelled, captions: set config to one of them"),
    ("testorg/shapes", {"config": "sst2"}, r"no config 'sst2'; its configs are labelled, captions"),
    ("testorg/shapes", {"config": "labelled", "split": "test"}, r"config labelled has splits train, validation, not 'test'"),
    ("testorg/shapes@v0", {"config": "labelled", "split": "validation"}, r"has splits train, not 'validation'"),
    ("testorg/shapes-folders", {}, r"split 'train' has files in folders captions, labelled: set config to one of them"),
])  # fmt: skip
def test_a_config_or_split_the_repo_lacks_is_named_with_those_it_has(offline_hub, reference, settings, message):
    from flava_kit.data.sources import DataError, hf_dataset

    with pytest.raises(DataError, match=message):
        hf_dataset(reference, label_column=None, **settings)


def test_evaluate_by_ids_through_the_cli_resolving_each_model_id_once(offline_hub, tmp_path, capsys, monkeypatch):
    from flava_kit import hub

    resolved, original = [], hub.resolve

    def counted(reference, what, repo_type="model"):
        resolved.append((str(reference), repo_type))
        return original(reference, what, repo_type)

    monkeypatch.setattr(hub, "resolve", counted)
    recipe = tmp_path / "by_id.yaml"
    recipe.write_text("""
models: {tiny: testorg/tiny-flava}
tasks:
  zero_shot: {type: zero_shot_classification,
              data: {type: hf_dataset, path: testorg/shapes, config: labelled, split: validation, label_column: label}}
  retrieval: {type: retrieval, data: {type: hf_dataset, path: testorg/shapes, config: captions, split: validation, text_column: caption}}
  knn: {type: knn, data: {type: webdataset, urls: testorg/shapes-wds}, k: 3}
""")
    code, out, err = run(capsys, "eval", recipe, "--out", tmp_path / "out")
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {name: info["items"]["data"]["rows"] for name, info in results["tasks"].items()}
    assert rows == {"zero_shot": 12, "retrieval": 12, "knn": 24} and "| knn " in out and "| zero_shot " in out
    assert results["models"]["tiny"]["source"].startswith("HF FLAVA")
    # the model, its weights and its tokenizer: one resolution, the rest of the loading takes its path
    assert [reference for reference, repo_type in resolved if repo_type == "model"] == ["testorg/tiny-flava"]
    assert {reference for reference, repo_type in resolved if repo_type == "dataset"} == {"testorg/shapes", "testorg/shapes-wds"}


def test_pretrain_two_steps_on_a_dataset_by_id(offline_hub, tmp_path, capsys):
    recipe = tmp_path / "hub_pretrain.yaml"
    recipe.write_text(f"""
extends: {TINY}
data:
  sources:
    shapes: {{type: hf_dataset, path: testorg/shapes, config: labelled, split: train, label_column: label}}
""")
    code, out, err = run(capsys, "pretrain", recipe, "train.steps=2", "train.eval=null", "--out", tmp_path / "run")
    assert code == 0, err
    with open(tmp_path / "run" / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(r["global_contrastive"] and r["itm"] for r in rows)
    [saved] = (tmp_path / "run" / "checkpoints").glob("step-*/recipe.yaml")
    assert "testorg/shapes" in saved.read_text()  # the recipe beside the weights names the data by its id


def test_a_dataset_not_cached_is_one_line_naming_the_id_the_cache_and_the_download_command(offline_hub, tmp_path, capsys, monkeypatch):
    import datasets

    def tried(*args, **kwargs):
        raise AssertionError(f"a dataset not cached must stop at the cache, yet datasets was asked for {args}")

    for name in ("load_dataset", "load_dataset_builder", "get_dataset_config_names"):
        monkeypatch.setattr(datasets, name, tried)
    eval_recipe = tmp_path / "missing_eval.yaml"
    eval_recipe.write_text("tasks:\n"
                           "  cifar: {type: zero_shot_classification, data: {type: hf_dataset, path: uoft-cs/cifar10, split: test, "
                           "image_column: img, label_column: label}}\n"
                           "  glue: {type: classification, data: {type: hf_dataset, path: nyu-mll/glue@v2, config: sst2, "
                           "split: validation, image_column: null, text_column: sentence, label_column: label}}\n")  # fmt: skip
    pretrain_recipe = tmp_path / "missing_pretrain.yaml"
    pretrain_recipe.write_text(f"extends: {TINY}\ndata:\n  sources:\n    wds: {{type: webdataset, urls: testorg/missing-wds}}\n")
    both = {"tasks.cifar.data": "hf download --repo-type dataset uoft-cs/cifar10",
            "tasks.glue.data": "hf download --repo-type dataset nyu-mll/glue --revision v2"}  # fmt: skip
    for argv, expected in [
        (["validate", eval_recipe], both),
        (["eval", "testorg/tiny-flava", eval_recipe, "--out", tmp_path / "out"], both),
        (["pretrain", pretrain_recipe, "train.steps=1", "--out", tmp_path / "run"],
         {"data.sources.wds": "hf download --repo-type dataset testorg/missing-wds"}),
    ]:  # fmt: skip
        code, out, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err, (argv, out, err)
        lines = [line for line in err.splitlines() if "not in the HF Hub cache" in line]
        assert len(lines) == len(expected), err
        for line, (where, command) in zip(lines, expected.items()):
            assert where in line and str(offline_hub) in line and "HF_HUB_OFFLINE=1 allows no download" in line and f"`{command}`" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_local_path_that_looks_like_an_id_still_wins(offline_hub, tmp_path, monkeypatch):
    from flava_kit.data.sources import hf_dataset
    from flava_kit.hub import is_hub_id

    import datasets

    monkeypatch.chdir(tmp_path)
    datasets.Dataset.from_dict({"text": ["a red circle"]}).save_to_disk("testorg/shapes")
    assert not is_hub_id("testorg/shapes") and len(hf_dataset("testorg/shapes", image_column=None)) == 1
    assert not is_hub_id("data/train.parquet") and not is_hub_id("shards/00000.tar")  # names of files, not repos


def test_features_of_a_dataset_id_are_cached_per_revision(offline_hub):
    """After ``hf download`` moves ``refs/main``, cached features of the old snapshot are not reused."""
    from flava_kit.evaluation.cache import cache_key

    node = {"type": "hf_dataset", "path": "testorg/shapes", "config": "labelled", "split": "train"}
    main = offline_hub / "datasets--testorg--shapes" / "refs" / "main"
    before = cache_key("weights", {}, node, "image")
    assert cache_key("weights", {}, node, "image") == before  # the same snapshot: the same entry
    try:
        main.write_text(OLD_REVISION)
        assert cache_key("weights", {}, node, "image") != before
    finally:
        main.write_text(REVISION)


def test_a_suite_with_a_dataset_not_cached_skips_it_and_lists_it_with_its_download_command(offline_hub, tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("""
tasks:
  shapes: {type: zero_shot_classification,
           data: {type: hf_dataset, path: testorg/shapes, config: labelled, split: validation, label_column: label}}
  cifar: {type: zero_shot_classification, data: {type: hf_dataset, path: uoft-cs/cifar10, split: test, image_column: img}}
settings: {missing: skip}
""")
    code, out, err = run(capsys, "eval", "testorg/tiny-flava", suite, "--out", tmp_path / "out")
    assert code == 0, err
    assert "| shapes " in out and "| cifar " not in out
    [line] = [line for line in out.splitlines() if line.startswith("not evaluated:")]
    assert "tasks.cifar" in line and "uoft-cs/cifar10" in line and "hf download --repo-type dataset uoft-cs/cifar10" in line
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results["tasks"]) == ["shapes"] and list(results["skipped_tasks"]) == ["cifar"]
    code, out, err = run(capsys, "eval", "testorg/tiny-flava", suite, "settings.missing=fail", "--out", tmp_path / "out2")
    assert code == 2 and "tasks.cifar.data" in err and "Traceback" not in err  # the default: stop before any work


def test_a_setting_overridden_on_a_suite_without_settings(offline_hub, tmp_path, capsys):
    suite = tmp_path / "bare.yaml"
    suite.write_text("tasks:\n  cifar: {type: zero_shot_classification, data: {type: hf_dataset, path: uoft-cs/cifar10, split: test}}\n"
                     "  shapes: {type: zero_shot_classification, data: {type: hf_dataset, path: testorg/shapes, config: labelled, "
                     "split: validation, label_column: label}}\n")  # fmt: skip
    code, out, err = run(capsys, "eval", "testorg/tiny-flava", suite, "settings.missing=skip", "--out", tmp_path / "out")
    assert code == 0, err
    assert any(line.startswith("not evaluated: tasks.cifar") for line in out.splitlines())
