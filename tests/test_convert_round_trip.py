"""``flava-kit convert`` both ways, and a run directory that holds everything it needs.

An HF FLAVA directory converts into one that evaluates alike; a run exports to an HF FLAVA
directory that evaluates like the run; a run that named its tokenizer (and its VQA answers) by path
keeps copies, so it still evaluates once those files are gone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_downstream import tiny_downstream
from tests.test_recipes_through_cli import cli

TINY = Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module")
def eval_recipe(tmp_path_factory) -> Path:
    """Zero-shot over a labelled folder of 32 px shapes made here, and retrieval over held-out pairs."""
    from tests.shards import synthetic_items

    root = tmp_path_factory.mktemp("eval")
    for item in [item for item in synthetic_items(60) if item["label"] >= 0][:24]:
        folder = root / "folder" / f"class_{item['label']:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        item["image"].save(folder / (item["key"].replace("/", "_") + ".png"))
    recipe = root / "eval.yaml"
    recipe.write_text(f"""recipe_version: 1
tasks:
  zero_shot: {{type: zero_shot_classification, data: {{type: labelled_folder, root: {root / 'folder'}}}}}
  retrieval: {{type: retrieval, data: {{type: synthetic, split: held_out, size: 32, image_size: 32}}, ks: [1, 5]}}
""")
    return recipe


def evaluate(capsys, tmp_path: Path, recipe: Path, *models: Path) -> dict:
    """``flava-kit eval MODELS... RECIPE``: each model's ``TASK_METRIC`` figures."""
    out = tmp_path / "eval-out"
    code, printed = cli(capsys, "eval", *map(str, models), str(recipe), "--out", str(out))
    assert code == 0, printed
    return json.loads((out / "results.json").read_text())["metrics"]


def hf_flava_directory(path: Path) -> Path:
    """A tiny HF ``FlavaModel`` with random weights, a tokenizer and a ``FlavaImageProcessor`` saved beside it."""
    import torch
    from transformers import FlavaConfig, FlavaImageProcessor, FlavaModel

    from flava_kit.data.synthetic import vocabulary
    from flava_kit.data.tokenizer import tokenizer_from_words

    tower = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    config = FlavaConfig(image_config={**tower, "image_size": 32, "patch_size": 8},
                         text_config={**tower, "vocab_size": 40, "max_position_embeddings": 16},
                         multimodal_config=tower, projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    FlavaModel(config).save_pretrained(path)
    tokenizer_from_words(vocabulary(), path)
    size = {"height": 32, "width": 32}
    FlavaImageProcessor(size=size, crop_size=size, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3]).save_pretrained(path)
    return path


def test_an_hf_directory_converts_into_one_that_evaluates_alike(eval_recipe, tmp_path, capsys):
    from transformers import FlavaModel

    source = hf_flava_directory(tmp_path / "hf")
    code, printed = cli(capsys, "convert", str(source), str(tmp_path / "converted"))
    assert code == 0, printed
    converted = tmp_path / "converted"
    carried = [name for name in (*TOKENIZER_FILES, "preprocessor_config.json") if (source / name).is_file()]
    assert {"tokenizer.json", "preprocessor_config.json"} <= set(carried)
    for name in carried:  # copied byte for byte
        assert (converted / name).read_bytes() == (source / name).read_bytes(), name
    FlavaModel.from_pretrained(converted)
    metrics = evaluate(capsys, tmp_path, eval_recipe, source, converted)
    assert metrics["converted"] == metrics["hf"] and len(metrics["hf"]) > 4


@pytest.mark.parametrize("which", ["run", "checkpoint"])
def test_a_run_exports_to_an_hf_directory_that_evaluates_like_the_run(which, run_dir, eval_recipe, tmp_path, capsys):
    from transformers import AutoTokenizer, FlavaImageProcessor, FlavaModel

    source = run_dir if which == "run" else next((run_dir / "checkpoints").glob("step-*"))
    code, printed = cli(capsys, "convert", str(source), str(tmp_path / "exported"))
    assert code == 0, printed
    assert "FlavaModel part" in printed  # the tiny run's colour-palette codebook has no place in HF's format
    exported = tmp_path / "exported"
    FlavaModel.from_pretrained(exported)  # HF reads it all: weights, tokenizer, image processor
    assert AutoTokenizer.from_pretrained(str(exported)).get_vocab() == AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")).get_vocab()
    assert FlavaImageProcessor.from_pretrained(exported).crop_size == {"height": 32, "width": 32}
    metrics = evaluate(capsys, tmp_path, eval_recipe, run_dir, exported)
    assert metrics["exported"] == metrics[run_dir.name] and len(metrics["exported"]) > 4


def test_convert_of_a_directory_that_is_neither_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, printed = cli(capsys, "convert", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert code == 2 and "not a flava_kit run directory (no checkpoints/)" in printed and "nor an HF FLAVA directory (no config.json)" in printed


def test_a_run_keeps_the_tokenizer_its_recipe_names(eval_recipe, tmp_path, capsys):
    from transformers import BertTokenizerFast

    from flava_kit.data.synthetic import vocabulary
    from flava_kit.data.tokenizer import tokenizer_from_words

    named = tmp_path / "my_tokenizer"
    tokenizer_from_words(list(reversed(vocabulary())), named)  # not the one a run builds without data.tokenizer
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"recipe_version: 1\nextends: {TINY}\ndata:\n  tokenizer: {named}\ntrain:\n  steps: 1\n  eval: null\n")
    run = tmp_path / "run"
    code, printed = cli(capsys, "pretrain", str(recipe), "--out", str(run))
    assert code == 0, printed
    vocab = BertTokenizerFast.from_pretrained(str(named)).get_vocab()
    shutil.move(named, tmp_path / "moved")
    assert BertTokenizerFast.from_pretrained(str(run / "tokenizer")).get_vocab() == vocab
    evaluate(capsys, tmp_path, eval_recipe, run)
    code, printed = cli(capsys, "pretrain", str(recipe), "train.steps=2", "--out", str(run), "--resume")  # reads its own copy too
    assert code == 0, printed


def test_a_vqa_run_keeps_the_answers_file_its_recipe_names(tmp_path, capsys):
    answers = tmp_path / "answers.txt"
    answers.write_text("yes\nno\nred\nblue\n")
    run = tmp_path / "run"
    recipe = tiny_downstream("finetune_vqa", tmp_path)
    code, printed = cli(capsys, "pretrain", recipe, f"model.answers={answers}", "~train.select", "train.steps=1", "--out", str(run))
    assert code == 0, printed
    answers.unlink()
    assert (run / "answers.txt").read_text() == "yes\nno\nred\nblue\n"
    code, printed = cli(capsys, "eval", str(run), "--out", str(tmp_path / "eval"))  # its train.eval: VQA accuracy
    assert code == 0, printed
