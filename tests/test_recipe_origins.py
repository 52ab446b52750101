"""Where a recipe's parts come from, through recipe files and the CLI: every problem of an eval
recipe at once with its line; what a recipe that ``extends`` another trains and evaluates on (and
that ``data.sources`` replaces the parent's); eval recipes named by ``train.select``/``train.eval``
checked before step 1; problems blamed on the override or key that caused them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flava_kit.cli import main
from tests.test_downstream_sources import VQA_ANSWERS, png, write_jsonl
from tests.test_recipes_through_cli import cli

MINE = "{type: manifest, path: DATA/vqa.jsonl, text_field: question, answers_field: answers}"


@pytest.fixture
def vqa_data(tmp_path) -> Path:
    """Eight VQA rows over four PNGs (``vqa.jsonl``) and an empty answer file (``empty.txt``)."""
    for index in range(4):
        (tmp_path / f"img{index}.png").write_bytes(png(index))
    write_jsonl(tmp_path / "vqa.jsonl", [{"image": str(tmp_path / f"img{i % 4}.png"), "question": f"is it {i}?", "answers": VQA_ANSWERS}
                                         for i in range(8)])  # fmt: skip
    (tmp_path / "empty.txt").write_text("")
    return tmp_path


def resolved(capsys, path: str) -> dict:
    """``flava-kit validate PATH --resolved``, its standard output read as YAML (the notes go to stderr)."""
    assert main(["validate", path, "--resolved"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def recipe(tmp_path: Path, text: str, data: Path | None = None, name: str = "recipe.yaml") -> str:
    path = tmp_path / name
    path.write_text(text.replace("DATA", str(data or tmp_path)))
    return str(path)


# --- 4: an eval recipe's problems, all at once, each with its line ---------------------------------


@pytest.mark.parametrize("command", ["validate", "eval"])
def test_an_eval_recipe_reports_a_missing_source_with_its_line_beside_every_other_problem(command, tmp_path, capsys):
    path = recipe(tmp_path, """models: {missing: /no/such/run}
tasks:
  folder_zs: {type: zero_shot_classification, data: {type: labelled_folder, root: DATA/nowhere}}
  typo: {type: zero_shot_clasification, data: {type: synthetic, split: held_out}}
""", name="my_eval.yaml")
    code, out = cli(capsys, command, path)
    assert code == 2
    assert "invalid recipe (3 problems)" in out, out
    assert "tasks.folder_zs.data: " in out and f"nowhere: no such image folder  [{path}:3]" in out, out
    assert f"tasks.typo.type: unknown task 'zero_shot_clasification'" in out and f"[{path}:4]" in out
    assert "models.missing" in out and f"[{path}:1]" in out


# --- 6: what a recipe extending another trains on --------------------------------------------------


def test_a_childs_sources_replace_the_parents_and_validate_and_pretrain_say_what_trains(vqa_data, tmp_path, capsys):
    path = recipe(tmp_path, f"extends: finetune_vqa\ndata:\n  sources:\n    mine: {MINE}\n", vqa_data)
    code, out = cli(capsys, "validate", path)
    assert code == 0, out
    assert "questions" not in out and "shapes_task" not in out.split("evaluates")[0], out
    assert f"mine: manifest, weight 1 (100%)  [{path}:4]" in out, out
    assert "train.select.eval: inline, tasks val (vqa on shapes_task)" in out and "finetune_vqa.yaml:23]" in out, out
    assert "train.eval: eval_vqa_shapes, tasks vqa (vqa on shapes_task)" in out and "finetune_vqa.yaml:27]" in out, out
    assert list(resolved(capsys, path)["data"]["sources"]) == ["mine"]
    run = tmp_path / "run"
    assert main(["pretrain", path, "train.steps=1", "train.select=null", "train.eval=null", "data.batch_size=4", "--out", str(run)]) == 0
    said = capsys.readouterr().err  # on stderr, like the notes: stdout ends with the run's results
    assert f"mine: manifest, weight 1 (100%)  [{path}:4]" in said and "train.eval: none" in said, said
    saved = yaml.safe_load(next((run / "checkpoints").glob("step-*/recipe.yaml")).read_text())
    assert list(saved["data"]["sources"]) == ["mine"]


def test_naming_an_inherited_source_keeps_it_merged_and_says_where_it_was_changed(vqa_data, tmp_path, capsys):
    path = recipe(tmp_path, f"extends: finetune_vqa\ndata:\n  sources:\n    mine: {MINE}\n    questions: {{size: 40, weight: 3}}\n", vqa_data)
    code, out = cli(capsys, "validate", path)
    assert code == 0, out
    assert f"mine: manifest, weight 1 (25%)  [{path}:4]" in out, out
    assert "questions: shapes_task, weight 3 (75%)  [" in out and f"finetune_vqa.yaml:16, changed at {path}:5]" in out, out
    sources = resolved(capsys, path)["data"]["sources"]
    assert list(sources) == ["mine", "questions"] and sources["questions"]["size"] == 40 and sources["questions"]["task"] == "vqa"


# --- 9: eval recipes a training recipe names, checked before step 1 -------------------------------


def test_an_inline_selection_eval_drops_the_keys_its_new_source_type_does_not_take_and_trains_through_selection(vqa_data, tmp_path, capsys):
    path = recipe(tmp_path, f"""extends: finetune_vqa
data:
  sources:
    mine: {MINE}
train:
  select:
    eval: {{tasks: {{val: {{type: vqa, data: {MINE}}}}}}}
""", vqa_data)
    code, out = cli(capsys, "validate", path)
    assert code == 0, out
    assert "note: train.select.eval.tasks.val.data.split: dropped, source 'manifest' does not take it" in out, out
    val = resolved(capsys, path)["train"]["select"]["eval"]["tasks"]["val"]["data"]
    assert val["type"] == "manifest" and not {"task", "split", "size"} & set(val), val
    run = tmp_path / "run"
    code, out = cli(capsys, "pretrain", path, "train.steps=2", "train.select.every=1", "train.eval=null", "data.batch_size=4",
                    "--out", str(run))  # fmt: skip
    assert code == 0, out
    assert (run / "checkpoints" / "best").is_dir() and (run / "validation.csv").read_text().count("\n") == 3


def test_a_broken_eval_recipe_named_by_train_stops_validate_and_pretrain_before_step_one(vqa_data, tmp_path, capsys):
    path = recipe(tmp_path, f"""extends: finetune_vqa
data:
  sources:
    mine: {MINE}
train:
  select:
    eval: {{tasks: {{val: {{type: vqa, data: {MINE.replace('vqa.jsonl', 'missing.jsonl')}, topk: 3}}}}}}
  eval: {tmp_path / 'no_such_eval.yaml'}
""", vqa_data)
    for command in (["validate", path], ["pretrain", path, "--out", str(tmp_path / "run")]):
        code, out = cli(capsys, *command)
        assert code == 2, out
        assert "invalid recipe (3 problems)" in out, out
        assert "train.select.eval.tasks.val.data: " in out and "missing.jsonl" in out and f"[{path}:7]" in out, out
        assert "train.select.eval.tasks.val.topk: unknown parameter of task 'vqa'" in out
        assert "train.eval: cannot find eval recipe" in out and f"[{path}:8]" in out
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_bad_eval_recipe_file_named_by_train_is_reported_at_its_own_line(tmp_path, capsys):
    bad = recipe(tmp_path, "tasks:\n  vqa: {type: vqa, data: {type: shapes_task, task: vqa, splt: held_out}}\n", name="my_eval.yaml")
    code, out = cli(capsys, "validate", "finetune_vqa", f"train.eval={bad}")
    assert code == 2
    assert f"train.eval: in eval recipe {bad}: tasks.vqa.data.splt: unknown parameter of source 'shapes_task'  [{bad}:2]" in out, out


# --- 11: a problem is blamed where it was made ---------------------------------------------------


def test_an_empty_answer_file_is_named_at_the_answers_key(vqa_data, tmp_path, capsys):
    empty = vqa_data / "empty.txt"
    path = recipe(tmp_path, f"extends: finetune_vqa\nmodel:\n  answers: {empty}\n")
    code, out = cli(capsys, "validate", path)
    assert code == 2 and f"- model.answers: {empty}: answers is empty  [{path}:3]" in out, out
    code, out = cli(capsys, "validate", "finetune_vqa", f"model.answers={empty}")
    assert code == 2 and f"- model.answers: {empty}: answers is empty  [override 'model.answers={empty}']" in out, out


@pytest.mark.parametrize("override, blamed", [
    ("model.fusion={type: flava_multimodal, hidden_size: 128, num_layers: -1, num_heads: 4}", "model.fusion.num_layers: "),
    ("data.crop_scale=[0.9, 0.5]", "data: "),
    ("model.fusion.num_heads=3", "model.fusion.hidden_size: "),
])  # fmt: skip
def test_a_bad_override_is_blamed_on_the_override_not_on_the_file_it_changes(override, blamed, capsys):
    code, out = cli(capsys, "validate", "finetune_vqa", override)
    assert code == 2 and blamed in out, out
    assert f"override '{override}'" in out, out
    assert "demo.yaml" not in out or re.search(rf"demo\.yaml:\d+, override '{re.escape(override)}'", out), out
