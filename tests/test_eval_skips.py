"""``flava-kit eval`` over data with a broken item: warned about on stderr, counted under the table,
and with ``settings.strict`` a stop naming the file and line (an evaluation over fewer items than
the data holds is a different number)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from test_eval_recipes import recipe_file, run

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def broken_manifest(tmp_path: Path) -> Path:
    """Five labelled images; line 3's label is not one of the class names."""
    for name, rgb in COLOURS.items():
        Image.new("RGB", (32, 32), rgb).save(tmp_path / f"{name}.png")
    labels = ["red", "green", "purple", "blue", "red"]
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": f"{'red' if c == 'purple' else c}.png", "text": c, "label": c}) for c in labels))
    return manifest


def eval_recipe(tmp_path: Path, workers: int = 0) -> str:
    manifest = broken_manifest(tmp_path)
    return recipe_file(tmp_path, f"""
tasks:
  colours: {{type: zero_shot_classification, data: {{type: manifest, path: {manifest}, class_names: [red, green, blue]}}}}
settings: {{workers: {workers}}}
""")


def test_a_skipped_item_is_warned_about_and_counted_under_the_table(run_dir, tmp_path, capsys):
    recipe = eval_recipe(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped a broken item of tasks\.colours\.data .*items\.jsonl:3: .*'purple'"):
        code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "out"))
    assert code == 0, err
    table_end = out.index("| colours ")
    assert "colours: 1 of 5 data items could not be read and were skipped" in out[table_end:], out
    assert "colours: 1 of 5 data items" in (tmp_path / "out" / "results.md").read_text()
    assert json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["colours"]["items"]["data"] == {"rows": 4, "skipped": 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_strict_stops_at_the_broken_item_naming_file_and_line(workers, run_dir, tmp_path, capsys):
    recipe = eval_recipe(tmp_path, workers)
    with pytest.warns(UserWarning, match="skipped a broken item"):  # features cached with the item skipped
        code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "lenient"))
    assert code == 0, err
    code, out, err = run(capsys, "eval", str(run_dir), recipe, "settings.strict=true")
    assert code == 2 and "Traceback" not in err, err
    assert f"tasks.colours.data: {tmp_path / 'items.jsonl'}:3: field 'label'" in err and "settings.strict is on" in err, err
