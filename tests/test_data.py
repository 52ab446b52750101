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
from flava_kit.data.sources import DataError, ImageFolder, ImageTextManifest, SyntheticSource, TextLines
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


@pytest.mark.parametrize("variety", [0.0, 0.6, 1.0])
def test_synthetic_variety_keeps_captions_and_labels_and_is_deterministic(variety):
    """Variety changes how a class looks, never which class an item is; at 0 it is the plain routine."""
    plain, varied, again = (SyntheticShapes(40, seed=1, variety=v) for v in (0.0, variety, variety))
    for i in range(40):
        assert varied[i]["label"] == plain[i]["label"] and varied[i]["text"].split()[-2:] == plain[i]["text"].split()[-2:]
        assert varied[i]["image"].tobytes() == again[i]["image"].tobytes()
    changed = sum(varied[i]["image"].tobytes() != plain[i]["image"].tobytes() for i in range(40))
    assert changed == 0 if variety == 0 else changed == 40


def test_shifted_shapes_are_labelled_deterministic_and_another_routine():
    from flava_kit.data.shifted_shapes import ShiftedShapes

    a, b = ShiftedShapes(60, image_size=48), ShiftedShapes(60, image_size=48)
    items = [a[i] for i in range(60)]
    assert all(item["image"].size == (48, 48) and item["image"].mode == "RGB" for item in items)
    assert all(item["image"].tobytes() == b[i]["image"].tobytes() for i, item in enumerate(items))
    assert {item["label"] for item in items} == set(range(12))
    assert all(item["text"] == f"a {class_names()[item['label']]}" for item in items)
    plain = {SyntheticShapes(60, image_size=48)[i]["image"].tobytes() for i in range(60)}
    assert not plain & {item["image"].tobytes() for item in items}


def test_shifted_shapes_without_a_shift_keep_their_labels_and_change_their_images():
    from flava_kit.data.shifted_shapes import SHIFTS, ShiftedShapes

    shifted = ShiftedShapes(40)
    for shift in SHIFTS:
        without = ShiftedShapes(40, without=[shift])
        assert [without[i]["label"] for i in range(40)] == [shifted[i]["label"] for i in range(40)]
        assert any(without[i]["image"].tobytes() != shifted[i]["image"].tobytes() for i in range(40)), shift
    with pytest.raises(ValueError, match="unknown shift colour"):
        ShiftedShapes(4, without=["colour"])


@pytest.fixture
def tokenizer(tmp_path):
    return tokenizer_from_words(vocabulary(), tmp_path / "tokenizer")


def make_batches(sources, tokenizer, **kwargs):
    options = dict(batch_size=8, processor=ImageProcessor(32, 32), tokenizer=tokenizer, text_length=12,
                   image_masking=BlockMasking(grid=4, num_masking_patches=6, min_block_patches=2),
                   text_masking=MlmMasking(vocab_size=24, mask_token_id=4))  # fmt: skip
    options.update(kwargs)
    return PretrainingBatches(sources, **options)


def take(batches, start=0, stop=None, workers=0):
    """Batches of steps ``start .. stop - 1`` through a DataLoader, as the trainer reads them."""
    stop = start + 1 if stop is None else stop
    loader = torch.utils.data.DataLoader(batches.window(start, stop), batch_size=None, num_workers=workers)
    return list(loader)


def shapes(size=100, **kwargs):
    return SyntheticSource(size, image_size=32, **kwargs)


def test_a_batch_depends_only_on_seed_step_and_rank(tokenizer):
    first, again = take(make_batches({"s": shapes()}, tokenizer), 0, 8), take(make_batches({"s": shapes()}, tokenizer), 0, 8)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again) for k in a if torch.is_tensor(a[k]))
    assert first[0]["keys"] != first[1]["keys"]
    other_rank = take(make_batches({"s": shapes()}, tokenizer, rank=1, world_size=2), 0, 1)
    assert set(other_rank[0]["keys"]).isdisjoint(take(make_batches({"s": shapes()}, tokenizer, world_size=2), 0, 1)[0]["keys"])


def test_an_epoch_of_an_indexed_source_reads_every_item_once(tokenizer):
    keys = [key for batch in take(make_batches({"s": shapes(40)}, tokenizer), 0, 10) for key in batch["keys"]]
    assert sorted(keys[:40]) == sorted(shapes(40)[i]["key"] for i in range(40))  # epoch 0: a permutation
    assert keys[40:] != keys[:40] and sorted(keys[40:]) == sorted(keys[:40])  # epoch 1: another one


def test_paired_batches_have_everything_and_itm_negatives(tokenizer):
    batch = take(make_batches({"s": shapes()}, tokenizer, batch_size=64, itm_negative_prob=0.5))[0]
    assert {"pixel_values", "codebook_pixel_values", "bool_masked_pos", "input_ids", "input_ids_masked", "attention_mask",
            "mlm_labels", "itm_labels", "keys", "data_position"} == set(batch)  # fmt: skip
    negatives = (batch["itm_labels"] == 0).float().mean().item()
    assert 0.25 < negatives < 0.75
    assert batch["pixel_values"].shape == (64, 3, 32, 32) and batch["bool_masked_pos"].shape == (64, 16)
    assert not take(make_batches({"s": shapes()}, tokenizer, itm_negative_prob=0.0))[0]["itm_labels"].eq(0).any()


def test_mixing_draws_each_batch_from_one_source_by_weight(tmp_path, tokenizer):
    (tmp_path / "texts.txt").write_text("a red circle\nthe blue square\n")
    sources = {"shapes": shapes(40, weight=3.0), "lines": TextLines(str(tmp_path / "texts.txt"), weight=1.0)}
    batches = take(make_batches(sources, tokenizer, batch_size=2), 0, 200)
    text_only = [b for b in batches if "pixel_values" not in b]
    assert 0.15 < len(text_only) / 200 < 0.35  # 1 in 4 expected
    assert all(set(b) == {"input_ids", "input_ids_masked", "attention_mask", "mlm_labels", "keys", "data_position"} for b in text_only)
    assert all(key.startswith("texts.txt:") for b in text_only for key in b["keys"])


def write_image(path, color=(255, 0, 0)):
    Image.new("RGB", (40, 30), color).save(path)


def test_manifest_folder_and_lines_sources(tmp_path):
    (tmp_path / "img").mkdir()
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png", (0, 0, 255))
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"image": "img/a.png", "text": "a red square"}) + "\n")
    (tmp_path / "pairs.csv").write_text("image,text\nimg/b.png,a blue square\n")
    assert ImageTextManifest(str(tmp_path / "pairs.jsonl"))[0] | {"image": None} == {"key": "pairs.jsonl:1", "text": "a red square", "image": None}
    assert ImageTextManifest(str(tmp_path / "pairs.csv"))[0]["image"].getpixel((0, 0)) == (0, 0, 255)
    assert [ImageFolder(str(tmp_path / "img"))[i]["key"] for i in range(2)] == ["a.png", "b.png"]
    with pytest.raises(DataError, match="no such manifest"):
        ImageTextManifest(str(tmp_path / "missing.jsonl"))


def test_broken_items_are_skipped_with_a_count_or_stop_when_strict(tmp_path, tokenizer):
    write_image(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    lines = [{"image": "good.png", "text": "a red square"}, {"image": "broken.png", "text": "a blue circle"}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")
    manifest = ImageTextManifest(str(tmp_path / "pairs.jsonl"))
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        manifest[1]
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: not valid JSON"):
        manifest[2]
    with pytest.warns(UserWarning, match="skipped a broken item of data.sources.pairs"):
        batch = take(make_batches({"pairs": manifest}, tokenizer, batch_size=4))[0]
    assert batch["pixel_values"].shape[0] == 4 and 6 <= batch["data_position"]["skipped"] <= 8  # 2 of every 3 broken
    with pytest.raises(DataError, match=r"data\.sources\.pairs: .*(pairs\.jsonl|broken\.png).*data\.strict"):
        take(make_batches({"pairs": manifest}, tokenizer, batch_size=4, strict=True), 0, 10)


def test_workers_build_the_same_batches_in_step_order(tokenizer):
    batches = make_batches({"s": shapes()}, tokenizer)
    alone, two = take(batches, 0, 6), take(batches, 0, 6, workers=2)
    assert [b["keys"] for b in alone] != [b["keys"] for b in two]  # two workers read two lanes...
    assert [b["data_position"]["lane"] for b in two] == [0, 1] * 3  # ...alternately, in step order
    again = take(batches, 0, 6, workers=2)
    assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(two, again))


def test_augmentation_crops_both_views_alike_and_is_off_by_default(tokenizer):
    image = Image.fromarray(skimage.data.astronaut())
    plain, augmented = ImageProcessor(64, 32), ImageProcessor(64, 32, crop_scale=(0.2, 0.3), flip=True)
    assert torch.equal(plain([image], generator=torch.Generator().manual_seed(0))["pixel_values"], plain([image])["pixel_values"])
    views = [augmented([image], generator=torch.Generator().manual_seed(seed)) for seed in range(4)]
    assert not torch.equal(views[0]["pixel_values"], views[1]["pixel_values"])
    assert torch.equal(views[0]["pixel_values"], augmented([image], generator=torch.Generator().manual_seed(0))["pixel_values"])
    for view in views:  # the codebook's view is the model's crop at its own size: downsampled, they agree
        model_view = torch.nn.functional.interpolate(view["pixel_values"], size=32, mode="area")
        mean, std = torch.tensor(plain.mean).view(1, 3, 1, 1), torch.tensor(plain.std).view(1, 3, 1, 1)
        model_in_01 = model_view * std + mean
        codebook_in_01 = (view["codebook_pixel_values"] - 0.1) / 0.8
        assert (model_in_01 - codebook_in_01).abs().mean() < 0.05


def test_word_starts_mark_the_first_piece_of_each_word():
    from flava_kit.data.tokenizer import tokenizer_from_words, word_starts

    tokenizer = tokenizer_from_words(["play", "##ing", "red"], None)
    encoded = tokenizer(["red playing", "playing"], padding="max_length", max_length=6, return_tensors="pt")
    # [CLS] red play ##ing [SEP] [PAD]  /  [CLS] play ##ing [SEP] [PAD] [PAD]
    assert word_starts(encoded).tolist() == [[False, True, True, False, False, False], [False, True, False, False, False, False]]


def test_a_pretraining_run_with_whole_word_masking_trains(tmp_path):
    from flava_kit.train.run import pretrain

    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    run = pretrain(recipe, ["data.text_masking.whole_word=true", "train.steps=2", "train.eval=null"], run_dir=tmp_path)
    assert run.step == 2
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    assert len(rows) == 3 and "mmm_text" in rows[0]
