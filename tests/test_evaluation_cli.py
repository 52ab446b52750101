"""``flava-kit eval --data``: zero-shot on a user's labelled folder or manifest, with a report."""

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


def test_zero_shot_on_a_labelled_folder_writes_json_and_a_confusion_png(run_dir, labelled, tmp_path, capsys):
    (tmp_path / "templates.txt").write_text("a photo of a {}\n{} colour\n")
    target = tmp_path / "out" / "report.json"
    assert main(["eval", str(run_dir), "--data", str(labelled), "--templates", str(tmp_path / "templates.txt"), "--json", str(target)]) == 0
    assert "zero-shot on 6 images, 3 classes" in capsys.readouterr().out
    report = json.loads(target.read_text())
    assert report["classes"] == ["blue", "green", "red"] and report["templates"] == ["a photo of a {}", "{} colour"]
    assert sum(map(sum, report["confusion"])) == 6 and [c["images"] for c in report["per_class"]] == [2, 2, 2]
    assert 0.0 <= report["acc@1"] <= report["acc@5"] == 1.0  # 3 classes: the top 5 hold them all
    assert target.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_a_labelled_manifest_needs_class_names(run_dir, labelled, tmp_path, capsys):
    manifest = labelled / "labels.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": f"{c}/0.png", "text": c, "label": i}) for i, c in enumerate(("blue", "green", "red"))))
    assert main(["eval", str(run_dir), "--data", str(manifest)]) == 2
    assert "a labelled manifest needs" in capsys.readouterr().err
    (labelled / "classnames.txt").write_text("blue\ngreen\nred\n")
    assert main(["eval", str(run_dir), "--data", str(manifest), "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["images"] == 3


def test_templates_without_a_placeholder_are_refused(run_dir, labelled, tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("a photo\n")
    assert main(["eval", str(run_dir), "--data", str(labelled), "--templates", str(tmp_path / "bad.txt")]) == 2
    assert "every template needs '{}'" in capsys.readouterr().err


def test_fine_tune_an_image_classifier_on_a_labelled_folder_then_evaluate_it(labelled, tmp_path, capsys):
    from flava_kit.train.run import pretrain

    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    overrides = ["model.type=flava_classifier", "model.modality=image", "model.num_classes=3", "data.task=classify",
                 "~data.sources.shapes", f"data.sources.photos={{type: labelled_folder, root: {labelled}}}", "data.batch_size=4", "train.steps=3"]  # fmt: skip
    run = pretrain(recipe, overrides, run_dir=tmp_path / "run")
    assert run.step == 3 and len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 4
    assert main(["eval", str(tmp_path / "run"), "--data", str(labelled)]) == 0
    assert "classification on 6 images, 3 classes" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "eval" / "classification.json").read_text())
    assert sum(map(sum, report["confusion"])) == 6 and "templates" not in report
