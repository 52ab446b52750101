"""The standard FLAVA equals HF transformers' FlavaModel: same weights, same inputs, same outputs."""

from __future__ import annotations

import pytest
import torch
from hf_reference import batch, random_hf_model, tiny_hf_config
from transformers import FlavaConfig, FlavaModel

import flava_kit
from flava_kit.errors import CheckpointError

TOL = 1e-5
FIELDS = ("image_embeddings", "text_embeddings", "multimodal_embeddings")


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    config = tiny_hf_config()
    hf = random_hf_model(config)
    path = tmp_path_factory.mktemp("hf_tiny")
    hf.save_pretrained(path)
    return config, hf, flava_kit.from_pretrained(path).eval(), path


def compare(hf, ours, inputs, fields=FIELDS):
    with torch.no_grad():
        expected = hf(**inputs)
        got = ours(**inputs)
    for field in fields:
        a, b = getattr(expected, field), getattr(got, field)
        assert a is not None and b is not None, field
        assert a.shape == b.shape, field
        assert (a - b).abs().max().item() < TOL, f"{field}: max difference {(a - b).abs().max().item()}"
    return expected, got


def test_paired_with_padding_and_masked_patches(tiny_pair):
    config, hf, ours, _ = tiny_pair
    expected, got = compare(hf, ours, batch(config))
    for modality in ("image", "text"):  # features: normalised projections of [CLS], as HF's contrastive head
        projection = getattr(hf, f"{modality}_projection")
        reference = torch.nn.functional.normalize(projection(getattr(expected, f"{modality}_embeddings")[:, 0]), dim=-1)
        assert (reference - getattr(got, f"{modality}_features")).abs().max() < TOL


def test_image_only(tiny_pair):
    config, hf, ours, _ = tiny_pair
    inputs = {k: v for k, v in batch(config).items() if k in ("pixel_values", "bool_masked_pos")}
    expected, got = compare(hf, ours, inputs, ("image_embeddings",))
    assert got.text_embeddings is None and got.multimodal_embeddings is None and expected.multimodal_embeddings is None


def test_text_only(tiny_pair):
    config, hf, ours, _ = tiny_pair
    inputs = {k: v for k, v in batch(config).items() if k in ("input_ids", "attention_mask")}
    compare(hf, ours, inputs, ("text_embeddings",))


def test_token_type_ids(tiny_pair):
    config, hf, ours, _ = tiny_pair
    inputs = batch(config)
    inputs["token_type_ids"] = (torch.arange(inputs["input_ids"].shape[1]) > 4).long().expand_as(inputs["input_ids"])
    compare(hf, ours, inputs)


def test_other_image_size_interpolates_position_embeddings(tiny_pair):
    config, hf, ours, _ = tiny_pair
    pixels = batch(config, image_size=48)["pixel_values"]
    with torch.no_grad():  # HF's FlavaModel.forward drops interpolate_pos_encoding; its image model takes it
        expected = hf.image_model(pixels, interpolate_pos_encoding=True).last_hidden_state
        got = ours(pixel_values=pixels).image_embeddings
    assert expected.shape == got.shape == (3, 1 + 36, 32)
    assert (expected - got).abs().max() < TOL


def test_round_trip_hf_to_flava_kit_to_hf_is_identical(tiny_pair, tmp_path):
    _, hf, ours, _ = tiny_pair
    flava_kit.save_pretrained(ours, tmp_path)
    again = FlavaModel.from_pretrained(tmp_path)
    expected, got = hf.state_dict(), again.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert (tmp_path / "flava_kit_recipe.yaml").is_file()
    assert flava_kit.load_recipe(tmp_path / "flava_kit_recipe.yaml").data == flava_kit.to_recipe(ours)


def test_pretraining_checkpoint_loads_its_flava_model_part(tmp_path):
    from transformers import FlavaForPreTraining

    config = tiny_hf_config()
    config.image_config.image_size, config.image_config.patch_size = 112, 8  # 14x14, the codebook's grid
    torch.manual_seed(0)
    pretraining = FlavaForPreTraining(config).eval()
    pretraining.save_pretrained(tmp_path)
    # Its heads are narrower than its fusion: HF builds that but could never run MMM, and neither
    # will flava_kit build it whole; the FlavaModel part loads on request.
    with pytest.raises(flava_kit.errors.RecipeError, match=r"objectives\.mmm_image\.hidden_size 32 != fusion\.hidden_size 24"):
        flava_kit.from_pretrained(tmp_path)
    ours = flava_kit.from_pretrained(tmp_path, model="flava").eval()
    skipped_prefixes = {k.split(".")[0] for k in ours.skipped_keys}
    assert skipped_prefixes == {"image_codebook", "mim_head", "mlm_head", "itm_head", "mmm_image_head", "mmm_text_head"}
    compare(pretraining.flava, ours, batch(config))


def test_full_size_flava(tmp_path):
    hf = random_hf_model(FlavaConfig(), std=0.02)
    hf.save_pretrained(tmp_path)
    ours = flava_kit.from_pretrained(tmp_path).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters()) == 241_356_289
    compare(hf, ours, batch(hf.config, batch_size=2, text_length=16))


# --- bad checkpoints ------------------------------------------------------------------------------
def test_missing_directory_or_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        flava_kit.from_pretrained(tmp_path)


def test_missing_weights(tiny_pair, tmp_path):
    (tmp_path / "config.json").write_text((tiny_pair[3] / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no weights found"):
        flava_kit.from_pretrained(tmp_path)


def test_corrupt_weights_are_refused_with_the_file_named(tiny_pair, tmp_path):
    source = tiny_pair[3]
    (tmp_path / "config.json").write_text((source / "config.json").read_text())
    data = (source / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read the weights"):
        flava_kit.from_pretrained(tmp_path)


def test_missing_and_unexpected_keys_are_listed(tiny_pair, tmp_path):
    from safetensors.torch import load_file, save_file

    source = tiny_pair[3]
    (tmp_path / "config.json").write_text((source / "config.json").read_text())
    state = load_file(source / "model.safetensors")
    del state["text_model.pooler.dense.bias"]
    state["text_model.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as info:
        flava_kit.from_pretrained(tmp_path)
    assert "missing keys (1): text_model.pooler.dense.bias" in str(info.value)
    assert "unexpected keys (1): text_model.extra.weight" in str(info.value)


def test_weights_only_pickle_checkpoints_load(tiny_pair, tmp_path):
    config, hf, ours, source = tiny_pair
    (tmp_path / "config.json").write_text((source / "config.json").read_text())
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    compare(hf, flava_kit.from_pretrained(tmp_path).eval(), batch(config))


def test_non_standard_component_cannot_be_saved_in_hf_format(tmp_path):
    model = flava_kit.build("flava_tiny", ["model.image_encoder.type=patch_mlp"])
    with pytest.raises(CheckpointError, match="model.image_encoder is 'flava_kit_demo_plugin:patch_mlp'"):
        flava_kit.save_pretrained(model, tmp_path)


def test_convert_command(tiny_pair, tmp_path, capsys):
    from flava_kit.cli import main

    assert main(["convert", str(tiny_pair[3]), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    assert "nowhere': no such directory, and not an HF Hub id" in capsys.readouterr().err
