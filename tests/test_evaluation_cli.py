"""``flava-kit eval``: the one-task shorthands (``--data``, ``--manifest``) and a run's own eval recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from flava_kit.cli import main
from flava_kit.evaluation.report import class_report

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture
def labelled(tmp_path) -> Path:
    root = tmp_path / "colours"
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), rgb).save(root / name / f"{i}.png")
    return root


def test_class_report_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    report = class_report(scores, torch.tensor([0, 1, 1]), ["cat", "dog"])
    assert report["confusion"] == [[1, 0], [1, 1]]
    assert report["per_class"] == [{"class": "cat", "images": 1, "recall": 1.0}, {"class": "dog", "images": 2, "recall": 0.5}]
    assert report["acc@1"] == pytest.approx(2 / 3) and report["mean_per_class_recall"] == pytest.approx(0.75)


def test_zero_shot_on_a_labelled_folder_writes_results_and_a_confusion_png(run_dir, labelled, tmp_path, capsys):
    (tmp_path / "templates.txt").write_text("a photo of a {}\n{} colour\n")
    out = tmp_path / "out"
    assert main(["eval", str(run_dir), "--data", str(labelled), "--templates", str(tmp_path / "templates.txt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| zero_shot " in printed and "accuracy ↑" in printed and f"wrote {out}" in printed
    results = json.loads((out / "results.json").read_text())
    [(model, by_task)] = results["results"].items()
    report = by_task["zero_shot"]["details"]
    assert report["class_names"] == ["blue", "green", "red"] and report["templates"] == ["a photo of a {}", "{} colour"]
    assert sum(map(sum, report["confusion"])) == 6 and [c["images"] for c in report["per_class"]] == [2, 2, 2]
    metrics = by_task["zero_shot"]["metrics"]
    assert 0.0 <= metrics["accuracy"] <= metrics["acc@5"] == 1.0  # 3 classes: the top 5 hold them all
    assert (out / model / "zero_shot" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.csv").read_text().startswith("model,task,type,metric,value,higher_is_better")


def test_a_labelled_manifest_needs_class_names(run_dir, labelled, tmp_path, capsys):
    manifest = labelled / "labels.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": f"{c}/0.png", "text": c, "label": i}) for i, c in enumerate(("blue", "green", "red"))))
    assert main(["eval", str(run_dir), "--data", str(manifest)]) == 2
    assert "a labelled manifest needs" in capsys.readouterr().err
    (labelled / "classnames.txt").write_text("blue\ngreen\nred\n")
    assert main(["eval", str(run_dir), "--data", str(manifest), "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "results.json").read_text())["tasks"]["zero_shot"]["items"]["data"]["rows"] == 3


def test_templates_without_a_placeholder_are_refused(run_dir, labelled, tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("a photo\n")
    assert main(["eval", str(run_dir), "--data", str(labelled), "--templates", str(tmp_path / "bad.txt")]) == 2
    assert "must hold one '{}'" in capsys.readouterr().err


def test_retrieval_on_a_manifest(run_dir, labelled, tmp_path, capsys):
    manifest = labelled / "pairs.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": f"{c}/{i}.png", "text": f"a {c} square"}) for c in COLOURS for i in range(2)))
    assert main(["eval", str(run_dir), "--manifest", str(manifest), "--task", "retrieval", "--out", str(tmp_path / "r")]) == 0
    metrics = json.loads((tmp_path / "r" / "results.json").read_text())["results"][run_dir.name]["retrieval"]["metrics"]
    assert set(metrics) == {f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    assert metrics["image_to_text_R@10"] == 1.0  # 6 pairs: the top 10 hold every caption


def test_fine_tune_an_image_classifier_on_a_labelled_folder_then_evaluate_it(labelled, tmp_path, capsys):
    from flava_kit.train.run import pretrain

    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    overrides = ["model.type=flava_classifier", "model.modality=image", "model.num_classes=3", "data.task=classify", "train.eval=null",
                 "~data.sources.shapes", f"data.sources.photos={{type: labelled_folder, root: {labelled}}}", "data.batch_size=4", "train.steps=3"]  # fmt: skip
    run = pretrain(recipe, overrides, run_dir=tmp_path / "run")
    assert run.step == 3 and len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 4
    assert main(["eval", str(tmp_path / "run"), "--data", str(labelled)]) == 0
    results = json.loads((tmp_path / "run" / "eval" / "eval" / "results.json").read_text())
    result = results["results"]["run"]["zero_shot"]
    assert results["models"]["run"]["kind"] == "classifier" and result["details"]["scores"] == "logits"
    assert sum(map(sum, result["details"]["confusion"])) == 6 and result["details"]["templates"] is None


def test_a_run_evaluates_to_what_its_pretraining_reported(tmp_path, capsys):
    """One evaluation path: ``flava-kit eval RUN`` runs the eval recipe the run's recipe names and
    prints the numbers its results.json holds; the features come from the cache (nothing encoded)."""
    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    assert main(["pretrain", recipe, "train.steps=2", "--out", str(tmp_path / "demo")]) == 0
    reported = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert main(["eval", str(tmp_path / "demo"), "--out", str(tmp_path / "again")]) == 0
    results = json.loads((tmp_path / "again" / "results.json").read_text())
    assert results["metrics"]["demo"] == {k: v for k, v in reported.items() if k not in ("step", "skipped_items", "wall_s", "eval")}
    assert {"zero_shot_accuracy", "shifted_zero_shot_accuracy", "linear_probe_accuracy", "retrieval_image_to_text_R@1"} <= set(reported)
    assert all(count == 0 for r in results["results"]["demo"].values() for count in r["encoded"].values())


def test_eval_without_tasks_says_what_to_give(run_dir, tmp_path, capsys):
    assert main(["eval", str(run_dir), str(run_dir)]) == 2
    assert "which tasks?" in capsys.readouterr().err


def test_overrides_of_the_eval_recipe_on_the_command_line(run_dir, labelled, tmp_path, capsys):
    assert main(["eval", str(run_dir), "tasks.zero_shot.ks=[1, 2]", "--data", str(labelled), "--out", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "results.json").read_text())["results"][run_dir.name]["zero_shot"]["metrics"]
    assert set(metrics) == {"accuracy", "acc@2", "mean_per_class_recall"}
    assert main(["eval", str(run_dir), "tasks.zero_shot.kz=2", "--data", str(labelled)]) == 2
    assert "tasks.zero_shot.kz: unknown parameter of task 'zero_shot_classification'" in capsys.readouterr().err
