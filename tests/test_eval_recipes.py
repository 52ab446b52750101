"""Eval recipes through ``flava-kit eval``: tasks x datasets x models -> one table, features cached."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from flava_kit.cli import main
from flava_kit.evaluation.cache import load_entry
from shards import synthetic_items

TINY = Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml"


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory) -> Path:
    """The same 36 one-shape items as a labelled folder, webdataset shards with .cls, and a saved HF dataset."""
    import datasets

    from flava_kit.data.shards import write_shards
    from flava_kit.data.synthetic import class_names

    root = tmp_path_factory.mktemp("labelled")
    items = [item for item in synthetic_items(80) if item["label"] >= 0][:36]
    for item in items:
        folder = root / "folder" / f"{item['label']:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        item["image"].save(folder / (item["key"].replace("/", "_") + ".png"))
    present = sorted({item["label"] for item in items})
    (root / "folder" / "classnames.txt").write_text("\n".join(class_names()[c] for c in present))
    write_shards(items, root / "shards", per_shard=12)
    table = {"image": [i["image"] for i in items], "text": [i["text"] for i in items], "label": [i["label"] for i in items]}
    datasets.Dataset.from_dict(table).save_to_disk(str(root / "saved"))
    (root / "classnames.txt").write_text("\n".join(class_names()))
    return root


def recipe_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "my_eval.yaml"
    path.write_text(text)
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_three_task_types_over_a_folder_shards_and_a_saved_dataset(run_dir, labelled_data, tmp_path, capsys):
    root = labelled_data
    recipe = recipe_file(tmp_path, f"""
tasks:
  folder_zero_shot: {{type: zero_shot_classification, data: {{type: labelled_folder, root: {root}/folder}}}}
  shards_knn: {{type: knn, data: {{type: webdataset, urls: "{root}/shards/{{00000..00002}}.tar"}}, k: 3}}
  saved_probe: {{type: linear_probe, data: {{type: hf_dataset, path: {root}/saved, label_column: label}}, train_share: 0.5}}
  saved_zero_shot: {{type: zero_shot_classification, data: {{type: hf_dataset, path: {root}/saved, label_column: label}},
                    class_names: {root}/classnames.txt}}
""")
    code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    by_task = results["results"][run_dir.name]
    assert {name: info["items"]["data"]["rows"] for name, info in results["tasks"].items()} == dict.fromkeys(by_task, 36)
    assert set(by_task["shards_knn"]["metrics"]) == {"accuracy"} and set(by_task["saved_probe"]["metrics"]) == {"accuracy"}
    # one dataset, one pass: the saved dataset's images were encoded once for two tasks
    assert by_task["saved_probe"]["encoded"] == by_task["saved_zero_shot"]["encoded"] == {"data:image": 36}
    # the same images through three sources score the same (the folder names only the classes present)
    assert by_task["saved_zero_shot"]["details"]["confusion"] != [] and "| shards_knn " in out and "| saved_probe " in out
    code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "again"))
    again = json.loads((tmp_path / "again" / "results.json").read_text())["results"][run_dir.name]
    assert all(count == 0 for result in again.values() for count in result["encoded"].values())  # the second call encodes nothing
    assert {t: r["metrics"] for t, r in again.items()} == {t: r["metrics"] for t, r in by_task.items()}


def test_an_hf_flava_directory_evaluates_like_the_run_it_was_exported_from(run_dir, labelled_data, tmp_path, capsys):
    from flava_kit import build, to_recipe
    from flava_kit.checkpoints import save_pretrained
    from flava_kit.checkpoints.loading import load_model

    exported = tmp_path / "hf"
    loaded = load_model(str(run_dir))
    node = to_recipe(loaded.model)["model"]  # the run's FlavaModel part, as HF's FlavaModel holds it
    flava = build({"model": {"type": "flava", **{k: node[k] for k in ("image_encoder", "text_encoder", "fusion", "projection_dim")}}})
    flava.load_state_dict(loaded.model.flava.state_dict())
    save_pretrained(flava, exported)
    loaded.tokenizer.save_pretrained(str(exported))
    recipe = recipe_file(tmp_path, f"""
models:
  run: {run_dir}
  hf: {{hf: {exported}}}
tasks:
  zero_shot: {{type: zero_shot_classification, data: {{type: labelled_folder, root: {labelled_data}/folder}}}}
  retrieval: {{type: retrieval, data: {{type: hf_dataset, path: {labelled_data}/saved}}}}
""")
    code, out, err = run(capsys, "eval", recipe, "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert [cell.strip() for cell in out.splitlines()[0].split("|")[1:-1]] == ["task", "data", "metric", "run", "hf"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["models"]["hf"]["source"].startswith("HF FLAVA") and results["models"]["hf"]["weights"] != results["models"]["run"]["weights"]
    for task in ("zero_shot", "retrieval"):
        ours, theirs = results["results"]["run"][task]["metrics"], results["results"]["hf"][task]["metrics"]
        assert ours.keys() == theirs.keys() and all(ours[k] == pytest.approx(theirs[k], abs=1e-6) for k in ours)


def test_several_models_one_table_with_a_column_each(run_dir, labelled_data, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["pretrain", str(TINY), "train.steps=2", "train.eval=null", "data.seed=5", "--out", str(other)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "eval", str(run_dir), str(other), "--data", f"{labelled_data}/folder", "--out", str(tmp_path / "both"))
    assert code == 0, err
    assert [cell.strip() for cell in out.splitlines()[0].split("|")[1:-1]] == ["task", "data", "metric", run_dir.name, "other"]
    rows = (tmp_path / "both" / "results.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in rows[1:]} == {run_dir.name, "other"}


def test_a_task_from_a_plugin_package_runs_from_a_recipe(run_dir, labelled_data, tmp_path, capsys):
    recipe = recipe_file(tmp_path, f"tasks:\n  norms: {{type: feature_norm, data: {{type: labelled_folder, root: {labelled_data}/folder}}}}\n")
    code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "out"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "results.json").read_text())["results"][run_dir.name]["norms"]["metrics"]
    assert metrics["mean_norm"] > 0 and "| norms " in out


def test_eval_recipe_problems_are_named_with_their_paths(run_dir, tmp_path, capsys):
    recipe = recipe_file(tmp_path, """
models: {missing: /no/such/run}
tasks:
  a: {type: zero_shot_clasification, data: {type: labelled_folder, root: x}}
  b: {type: knn, data: {type: synthetic, split: held_out}, kk: 3}
settings: {batch_sise: 4}
""")
    code, out, err = run(capsys, "eval", recipe)
    assert code == 2
    assert "tasks.a.type" in err and "did you mean 'zero_shot_classification'" in err.lower()
    assert "tasks.b.kk: unknown parameter of task 'knn'" in err and "settings.batch_sise" in err
    assert "models.missing" in err and "my_eval.yaml" in err
    assert "Traceback" not in err


def test_an_interrupted_pass_resumes_where_it_stopped(run_dir, labelled_data, tmp_path):
    """Features are written in chunks while streaming; a pass that dies keeps its chunks, and the next
    call encodes only the rest, into the same features as an uninterrupted pass."""
    from flava_kit.checkpoints.loading import load_model
    from flava_kit.data.sources import LabelledImageFolder
    from flava_kit.evaluation.encode import dataset_features

    class Dies(LabelledImageFolder):
        left = 20

        def read(self, index: int) -> dict:
            Dies.left -= 1
            if Dies.left < 0:
                raise KeyboardInterrupt
            return super().read(index)

    node = {"type": "labelled_folder", "root": f"{labelled_data}/folder"}
    model = load_model(str(run_dir))
    with pytest.raises(KeyboardInterrupt):
        dataset_features(model, Dies(node["root"]), node, {"image"}, tmp_path / "cache", batch_size=4)
    (partial,) = (tmp_path / "cache").glob("*.partial")
    assert len(list(partial.glob("chunk-*.npz"))) >= 1
    # the rows done before the interruption were written as a chunk on the way out
    resumed, encoded = dataset_features(model, LabelledImageFolder(node["root"]), node, {"image"}, tmp_path / "cache", batch_size=4)
    whole, _ = dataset_features(model, LabelledImageFolder(node["root"]), node, {"image"}, tmp_path / "fresh", batch_size=4)
    assert encoded["image"] == 36 - 20
    assert resumed["image"].keys == whole["image"].keys
    assert (resumed["image"].tensor("projected") == whole["image"].tensor("projected")).all()
    assert load_entry(tmp_path / "cache", partial.name.removesuffix(".partial")) is not None


def test_nothing_in_evaluation_imports_train():
    root = Path(__file__).parent.parent / "flava_kit" / "evaluation"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("flava_kit.train") for n in names), f"{path} imports {names}"


def test_validate_takes_eval_recipes_and_opens_their_sources(tmp_path, capsys):
    code, out, err = run(capsys, "validate", "eval_shapes")
    assert code == 0 and "eval_shapes: valid" in out
    recipe = recipe_file(tmp_path, f"tasks:\n  photos: {{type: knn, data: {{type: labelled_folder, root: {tmp_path}/nowhere}}}}\n")
    code, out, err = run(capsys, "validate", recipe)
    assert code == 2 and "tasks.photos" in err and "nowhere: no such image folder" in err
    code, out, err = run(capsys, "validate", "eval_shapes", "--resolved")
    assert code == 0 and "split: held_out" in out and "batch_size: 64" in out


def test_the_shift_factors_recipe_reports_each_shift_switched_off(run_dir, tmp_path, capsys):
    from flava_kit.data.shifted_shapes import SHIFTS

    smaller = [f"tasks.{task}.data.size=24" for task in ["shifted", *(f"without_{shift}" for shift in SHIFTS)]]
    code, out, err = run(capsys, "eval", str(run_dir), *smaller, "--recipe", "eval_shift_factors", "--out", str(tmp_path / "factors"))
    assert code == 0, err
    tasks = json.loads((tmp_path / "factors" / "results.json").read_text())["tasks"]
    assert set(tasks) == {"shifted", *(f"without_{shift}" for shift in SHIFTS)}
    assert [tasks[f"without_{shift}"]["data"]["data"]["without"] for shift in SHIFTS] == [[shift] for shift in SHIFTS]
