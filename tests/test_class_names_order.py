"""A ``labelled_folder``'s ``classnames.txt`` names its folders whatever order it lists them in, through
an eval recipe and ``flava-kit eval``: each folder holds a different number of images, so a class given
another folder's name shows in the per-class image counts, whatever the (barely trained) model scores."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.test_recipes_through_cli import cli

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30), "sky_blue": (120, 190, 240)}


def folder_tree(root: Path, names: dict[str, tuple[int, int, int]]) -> Path:
    """One folder per class, the i-th (in the order given) holding i + 1 plain images of its colour."""
    for count, (name, rgb) in enumerate(names.items(), start=1):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (32, 32), tuple(min(255, c + 7 * i) for c in rgb)).save(root / name / f"{i}.png")
    return root


def zero_shot(capsys, run_dir: Path, root: Path, out: Path) -> dict:
    """Zero-shot on ``root`` through an eval recipe file and the CLI: the task's details and metrics."""
    recipe = out.parent / f"{out.name}.yaml"
    recipe.write_text(f"tasks:\n  photos: {{type: zero_shot_classification, data: {{type: labelled_folder, root: {root}}}}}\n")
    code, printed = cli(capsys, "eval", str(run_dir), str(recipe), "--out", str(out))
    assert code == 0, printed
    result = json.loads((out / "results.json").read_text())["results"][run_dir.name]["photos"]
    return {"metrics": result["metrics"], **{k: result["details"][k] for k in ("class_names", "per_class", "confusion")}}


def test_a_names_file_in_another_order_scores_as_the_folder_names(run_dir, tmp_path, capsys):
    root = folder_tree(tmp_path / "colours", COLOURS)
    plain = zero_shot(capsys, run_dir, root, tmp_path / "plain")
    assert plain["class_names"] == ["blue", "green", "red", "sky blue"]
    assert [c["images"] for c in plain["per_class"]] == [1, 2, 3, 4]
    # by colour, as a person writes them; a folder named with "_" may be listed with a space
    (root / "classnames.txt").write_text("red\nsky blue\ngreen\nblue\n")
    assert zero_shot(capsys, run_dir, root, tmp_path / "by_colour") == plain
    (root / "classnames.txt").write_text("blue\ngreen\nred\nsky blue\n")
    assert zero_shot(capsys, run_dir, root, tmp_path / "sorted") == plain


def test_numbered_folders_take_line_k_for_folder_k(run_dir, tmp_path, capsys):
    """Folders ``0`` .. ``10`` (as an export by label index writes them) sort as strings 0, 1, 10, 2, ...:
    line k still names folder k, so the scores are those of the same folders named by their classes."""
    names = [f"colour {k}" for k in range(11)]
    rgbs = {str(k): (20 * k, 255 - 20 * k, (90 * k) % 256) for k in range(11)}
    numbered = folder_tree(tmp_path / "numbered", rgbs)
    (numbered / "classnames.txt").write_text("\n".join(names))
    named = folder_tree(tmp_path / "named", {names[int(k)].replace(" ", "_"): rgb for k, rgb in rgbs.items()})
    by_number, by_name = (zero_shot(capsys, run_dir, root, tmp_path / f"{root.name}_out") for root in (numbered, named))
    per_class = [{entry["class"]: entry for entry in result["per_class"]} for result in (by_number, by_name)]
    assert per_class[0] == per_class[1] and per_class[0]["colour 10"]["images"] == 11
    assert by_number["metrics"] == by_name["metrics"]


def test_display_names_for_folders_named_otherwise_go_by_position(run_dir, tmp_path, capsys):
    """ImageNet's layout: folders named by an id, names line i for the i-th folder in sorted order."""
    root = folder_tree(tmp_path / "ids", {"n01": COLOURS["blue"], "n02": COLOURS["green"], "n03": COLOURS["red"]})
    (root / "classnames.txt").write_text("tench\ngoldfish\nshark\n")
    result = zero_shot(capsys, run_dir, root, tmp_path / "out")
    assert [(c["class"], c["images"]) for c in result["per_class"]] == [("tench", 1), ("goldfish", 2), ("shark", 3)]


def test_a_names_file_that_does_not_name_the_folders_is_refused_naming_both_orders(run_dir, tmp_path, capsys):
    root = folder_tree(tmp_path / "colours", {k: COLOURS[k] for k in ("blue", "green", "red")})
    (root / "classnames.txt").write_text("red\ngreen\nyellow\n")
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"tasks:\n  photos: {{type: zero_shot_classification, data: {{type: labelled_folder, root: {root}}}}}\n")
    code, printed = cli(capsys, "eval", str(run_dir), str(recipe), "--out", str(tmp_path / "out"))
    assert code == 2 and printed.startswith("error: ") and "tasks.photos.data" in printed
    assert "red, green, yellow" in printed and "blue, green, red" in printed  # the file's order and the folders'
    assert "'yellow'" in printed and not (tmp_path / "out" / "results.json").exists()
