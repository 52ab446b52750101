"""The shipped suites (``flava_zero_shot``, ``flava_linear_probe``, ``flava_retrieval``, ``flava_glue``)
by name through the CLI, offline: what is in the HF Hub cache is evaluated, the rest is listed with
the command that downloads it; a task that runs on a model of its own (``models:``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flava_kit.cli import main
from tests.test_clip_benchmark_layout import wds  # noqa: F401  (a fixture: CLIP_benchmark's exporter's folders)

SUITES = {"flava_zero_shot": 20, "flava_linear_probe": 20, "flava_retrieval": 2, "flava_glue": 10}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cache_as(cache: Path, repo: str, folder: Path) -> None:
    """``folder`` as the HF Hub cache's snapshot of the dataset repo ``repo`` (``refs/main`` naming it)."""
    root = cache / f"datasets--{repo.replace('/', '--')}"
    shutil.copytree(folder, root / "snapshots" / "0123abcd")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123abcd")


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_a_suite_with_nothing_cached_validates_and_lists_every_dataset_with_its_download_command(suite, offline, capsys):
    code, out, err = run(capsys, "validate", suite)
    assert code == 0, err
    listed = [line for line in out.splitlines() if line.startswith("not evaluated: tasks.")]
    assert len(listed) == SUITES[suite] and all("hf download --repo-type dataset " in line for line in listed), out


def test_the_zero_shot_suite_evaluates_what_is_cached_by_name(offline, wds, run_dir, tmp_path, capsys):  # noqa: F811
    cache_as(offline, "clip-benchmark/wds_vtab-cifar10", wds / "cls")  # stands in for CIFAR-10: a CLIP_benchmark folder
    cache_as(offline, "clip-benchmark/wds_mscoco_captions", wds / "ret")
    code, out, err = run(capsys, "eval", run_dir, "--recipe", "flava_zero_shot", "--out", tmp_path / "zs")
    assert code == 0, err
    results = json.loads((tmp_path / "zs" / "results.json").read_text())
    assert list(results["tasks"]) == ["cifar10"] and len(results["skipped_tasks"]) == 19
    assert results["results"][run_dir.name]["cifar10"]["details"]["templates_from"] == "dataset"
    assert "| cifar10 " in out and "not evaluated: tasks.imagenet: clip-benchmark/wds_imagenet1k" in out
    code, out, err = run(capsys, "eval", run_dir, "--recipe", "flava_retrieval", "--out", tmp_path / "rt")
    assert code == 0, err
    results = json.loads((tmp_path / "rt" / "results.json").read_text())
    assert list(results["tasks"]) == ["coco"] and results["tasks"]["coco"]["items"]["data"]["rows"] == 12
    assert results["results"][run_dir.name]["coco"]["details"]["captions_per_image"] == [5]


def test_a_task_runs_only_on_the_models_it_names(wds, run_dir, tmp_path, capsys):  # noqa: F811
    recipe = tmp_path / "own_models.yaml"
    recipe.write_text(f"""
models: {{a: {run_dir}, b: {run_dir}}}
tasks:
  for_a: {{type: zero_shot_classification, models: [a], data: {{type: webdataset, urls: {wds / 'cls'}}}}}
  for_both: {{type: zero_shot_classification, data: {{type: webdataset, urls: {wds / 'cls'}}}}}
  for_c: {{type: zero_shot_classification, models: [c], data: {{type: webdataset, urls: {wds / 'cls'}}}}}
""")
    code, out, err = run(capsys, "eval", recipe, "--out", tmp_path / "out")
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["results"]["a"]) == {"for_a", "for_both"} and set(results["results"]["b"]) == {"for_both"}
    assert "not evaluated: tasks.for_c: it runs on the models c, and none of them is given (models: a, b)" in out
    row = next(line for line in out.splitlines() if line.startswith("| for_a ") and "accuracy" in line)
    cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
    assert cells[-2] and not cells[-1]  # a value for model a, none for model b
    recipe.write_text(recipe.read_text().replace("models: [c]", "models: c"))
    code, out, err = run(capsys, "validate", recipe)
    assert code == 2 and "tasks.for_c.models" in err
