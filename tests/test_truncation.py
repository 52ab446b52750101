"""Text longer than the text length is cut to fit; a run and an evaluation say how many items were
cut, once, with one of them as the model sees it and its full length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from test_eval_recipes import recipe_file, run
from test_recipes_through_cli import cli, write

LONG = "the red circle is left of the blue square and the green triangle is above the red circle"  # 20 tokens; the demo has 16 positions
CUT = r"'\[CLS\] the red circle \[UNK\] left of the blue square and the green triangle \[UNK\] \[SEP\]' \(20 tokens\)"


def test_training_counts_the_cut_texts_read_by_every_worker(tmp_path, capsys):
    (tmp_path / "captions.txt").write_text("\n".join([LONG, "a red circle"] * 8))
    recipe = write(tmp_path, f"data:\n  sources: {{shapes: null, captions: {{type: text_lines, path: {tmp_path / 'captions.txt'}}}}}\n"
                             "  batch_size: 4\n")  # fmt: skip
    with pytest.warns(UserWarning, match=rf"data: the text of 8 of 16 items is longer than data\.text_length \(16 tokens\) .* e\.g\. {CUT}") as seen:
        code, out = cli(capsys, "pretrain", recipe, "train.steps=4", "train.eval=null", "data.workers=2", "--out", str(tmp_path / "run"))
    assert code == 0, out
    assert sum("is longer than" in str(w.message) for w in seen) == 1  # once per run, however many workers and batches


def test_an_evaluation_pass_counts_its_cut_sentence_pairs(run_dir, tmp_path, capsys):
    pairs = [("the red circle is left of", "the blue square is right of the green triangle"), ("a red circle", "a circle"),
             ("the red circle is left of", "the blue square is right of the green triangle"), ("a blue square", "a square")]  # fmt: skip
    for i in range(len(pairs)):
        Image.new("RGB", (32, 32), (60 * i, 90, 200 - 40 * i)).save(tmp_path / f"{i}.png")
    lines = [json.dumps({"image": f"{i}.png", "text": t, "pair": p}) for i, (t, p) in enumerate(pairs)]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines))
    recipe = recipe_file(tmp_path, f"tasks:\n  pairs: {{type: retrieval, data: {{type: manifest, path: {tmp_path / 'pairs.jsonl'}, "
                                   "text_pair_field: pair}}\n")  # fmt: skip
    cut = r"'\[CLS\] the red circle \[UNK\] left of \[SEP\] the blue square \[UNK\] right of the \[SEP\]' \(18 tokens\)"
    with pytest.warns(UserWarning, match=rf"tasks\.pairs\.data: the text of 2 of 4 items is longer than the model's 16 text positions .* "
                                         rf"e\.g\. {cut}") as seen:  # fmt: skip
        code, out, err = run(capsys, "eval", str(run_dir), recipe, "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert sum("is longer than" in str(w.message) for w in seen) == 1
