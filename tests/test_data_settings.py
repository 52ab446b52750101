"""Data settings said once (taken from the model, mismatches named by validate) and ``flava-kit data``."""

from __future__ import annotations

from pathlib import Path

import yaml
from PIL import Image

from flava_kit.cli import main
from flava_kit.recipe import build, build_section, load_recipe

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
DEMO = Path(__file__).parent.parent / "recipes" / "demo.yaml"


def test_the_demo_states_its_sizes_once_in_the_model_and_the_data_follows():
    data_section = yaml.safe_load(DEMO.read_text())["data"]
    assert not {"image_size", "codebook_size", "text_length"} & set(data_section)
    recipe = load_recipe("demo")
    data = build_section(recipe, "data").follow(build(recipe))
    assert (data.image_size, data.codebook_size, data.text_length) == (64, 64, 16)
    assert data.processor()([Image.new("RGB", (90, 70))])["codebook_pixel_values"].shape == (1, 3, 64, 64)


def test_a_model_without_a_codebook_gets_no_codebook_pixels():
    recipe = load_recipe("demo_siglip_pixel")
    data = build_section(recipe, "data").follow(build(recipe))
    assert data.codebook_size is None and set(data.processor()([Image.new("RGB", (8, 8))])) == {"pixel_values"}


def test_validate_names_both_sides_of_a_mismatch(tmp_path, capsys):
    from flava_kit.data.tokenizer import tokenizer_from_words

    tokenizer_from_words([f"word{i}" for i in range(40)], tmp_path / "tok")
    bad = ["data.image_size=48", "data.codebook_size=32", "data.text_length=20", f"data.tokenizer={tmp_path / 'tok'}"]
    assert main(["validate", "demo", *bad]) == 2
    err = capsys.readouterr().err
    for expected in ("data.image_size", "model.image_encoder.image_size 64", "data.codebook_size", "model.codebook.input_size 64",
                     "data.text_length", "max_position_embeddings 16", "data.tokenizer", "has 45 tokens, more than model.text_encoder.vocab_size 32"):  # fmt: skip
        assert expected in err, expected
    assert main(["validate", "demo", "data.image_size=64"]) == 0  # set and equal: fine


def test_flava_kit_data_draws_a_batch_and_measures_the_loader(tmp_path, capsys):
    png = tmp_path / "batch.png"
    assert main(["data", TINY, "--out", str(png), "--batches", "3"]) == 0
    out = capsys.readouterr().out
    assert "samples/s over 3 batches of 8" in out and "0 broken items skipped" in out and "synthetic" in out
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 200
