"""Data: the processor against HF on real photographs, sources, mixing, ITM negatives, bad items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image
from transformers import FlavaImageProcessor

from flava_kit.data.batches import PretrainingBatches
from flava_kit.data.processor import ImageProcessor
from flava_kit.data.sources import DataError, ImageFolder, ImageTextManifest, TextLines
from flava_kit.data.synthetic import SyntheticShapes, class_names, vocabulary
from flava_kit.data.tokenizer import tokenizer_from_words
from flava_kit.masking import BlockMasking, MlmMasking


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera"])
def test_processor_matches_hf_on_real_photographs(name):
    image = Image.fromarray(getattr(skimage.data, name)())  # camera is greyscale: both convert to RGB
    expected = FlavaImageProcessor()(images=[image.convert("RGB")], return_codebook_pixels=True, return_tensors="pt")
    got = ImageProcessor()([image])
    for key in ("pixel_values", "codebook_pixel_values"):
        assert got[key].shape == expected[key].shape
        assert (got[key] - expected[key]).abs().max() <= 1e-6, key


def test_synthetic_dataset_is_deterministic_and_labelled():
    a, b = SyntheticShapes(50, seed=3), SyntheticShapes(50, seed=3)
    assert all(a[i]["text"] == b[i]["text"] and a[i]["image"].tobytes() == b[i]["image"].tobytes() for i in range(50))
    single = [a[i] for i in range(50) if a[i]["label"] >= 0]
    assert single and all(class_names()[item["label"]] in item["text"] for item in single)
    assert all(word in vocabulary() for i in range(50) for word in a[i]["text"].split())


@pytest.fixture
def tokenizer(tmp_path):
    return tokenizer_from_words(vocabulary(), tmp_path / "tokenizer")


def make_batches(sources, tokenizer, **kwargs):
    options = dict(weights={}, batch_size=8, processor=ImageProcessor(32, 32), tokenizer=tokenizer, text_length=12,
                   image_masking=BlockMasking(grid=4, num_masking_patches=6, min_block_patches=2),
                   text_masking=MlmMasking(vocab_size=24, mask_token_id=4))  # fmt: skip
    options.update(kwargs)
    return PretrainingBatches(sources, **options)


def test_a_batch_depends_only_on_seed_and_step(tokenizer):
    first = make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer)
    again = make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer)
    for step in (7, 0, 7):
        assert all(torch.equal(first[step][k], again[step][k]) for k in first[step])
    assert not torch.equal(first[0]["pixel_values"], first[1]["pixel_values"])
    other_rank = make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer, rank=1)
    assert not torch.equal(first[0]["pixel_values"], other_rank[0]["pixel_values"])


def test_paired_batches_have_everything_and_itm_negatives(tokenizer):
    batches = make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer, batch_size=64, itm_negative_prob=0.5)
    batch = batches[0]
    assert {"pixel_values", "codebook_pixel_values", "bool_masked_pos", "input_ids", "input_ids_masked",
            "attention_mask", "mlm_labels", "itm_labels"} == set(batch)  # fmt: skip
    negatives = (batch["itm_labels"] == 0).float().mean().item()
    assert 0.25 < negatives < 0.75
    assert batch["pixel_values"].shape == (64, 3, 32, 32) and batch["bool_masked_pos"].shape == (64, 16)
    assert not make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer, itm_negative_prob=0.0)[0]["itm_labels"].eq(0).any()


def test_mixing_draws_each_batch_from_one_source_by_weight(tmp_path, tokenizer):
    (tmp_path / "texts.txt").write_text("a red circle\nthe blue square\n")
    sources = {"synthetic": SyntheticShapes(40, 32), "text_lines": TextLines(tmp_path / "texts.txt")}
    batches = make_batches(sources, tokenizer, weights={"synthetic": 3.0, "text_lines": 1.0})
    kinds = ["pixel_values" in batches[step] for step in range(200)]
    text_only = [batches[step] for step in range(200) if not kinds[step]]
    assert 0.15 < len(text_only) / 200 < 0.35  # 1 in 4 expected
    assert all(set(b) == {"input_ids", "input_ids_masked", "attention_mask", "mlm_labels"} for b in text_only)


def write_image(path, color=(255, 0, 0)):
    Image.new("RGB", (40, 30), color).save(path)


def test_manifest_folder_and_lines_sources(tmp_path):
    (tmp_path / "img").mkdir()
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png", (0, 0, 255))
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"image": "img/a.png", "text": "a red square"}) + "\n")
    (tmp_path / "pairs.csv").write_text("image,text\nimg/b.png,a blue square\n")
    assert ImageTextManifest(tmp_path / "pairs.jsonl")[0]["text"] == "a red square"
    assert ImageTextManifest(tmp_path / "pairs.csv")[0]["image"].getpixel((0, 0)) == (0, 0, 255)
    assert len(ImageFolder(tmp_path / "img")) == 2
    with pytest.raises(DataError, match="no such manifest"):
        ImageTextManifest(tmp_path / "missing.jsonl")


def test_broken_items_are_skipped_with_a_count_or_stop_when_strict(tmp_path, tokenizer):
    write_image(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    lines = [{"image": "good.png", "text": "a red square"}, {"image": "broken.png", "text": "a blue circle"}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")
    manifest = ImageTextManifest(tmp_path / "pairs.jsonl")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        manifest[1]
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: not valid JSON"):
        manifest[2]
    batches = make_batches({"manifest": manifest}, tokenizer, batch_size=4)
    with pytest.warns(UserWarning, match="skipped a broken item"):
        batch = batches[0]
    assert batch["pixel_values"].shape[0] == 4 and batches.skipped > 0
    strict = make_batches({"manifest": manifest}, tokenizer, batch_size=4, strict=True)
    with pytest.raises(DataError, match=r"pairs\.jsonl|broken\.png"):
        for step in range(10):
            strict[step]


def test_workers_build_the_same_batches(tokenizer):
    batches = make_batches({"synthetic": SyntheticShapes(100, 32)}, tokenizer)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(4), num_workers=2)
    for step, batch in enumerate(loader):
        assert torch.equal(batch["pixel_values"], batches[step]["pixel_values"])


def test_word_starts_mark_the_first_piece_of_each_word():
    from flava_kit.data.tokenizer import tokenizer_from_words, word_starts

    tokenizer = tokenizer_from_words(["play", "##ing", "red"], None)
    encoded = tokenizer(["red playing", "playing"], padding="max_length", max_length=6, return_tensors="pt")
    # [CLS] red play ##ing [SEP] [PAD]  /  [CLS] play ##ing [SEP] [PAD] [PAD]
    assert word_starts(encoded).tolist() == [[False, True, True, False, False, False], [False, True, False, False, False, False]]


def test_a_pretraining_run_with_whole_word_masking_trains(tmp_path):
    from flava_kit.train.run import pretrain

    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    run = pretrain(recipe, ["data.text_masking.whole_word=true", "train.steps=2", "data.synthetic_held_out=0"], run_dir=tmp_path)
    assert run.step == 2
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    assert len(rows) == 3 and "mmm_text" in rows[0]
