"""Every kind of bad recipe gets an error naming the recipe path (and file:line where known)."""

from __future__ import annotations

import re

import pytest

import flava_kit
from flava_kit.errors import RecipeError


def problems_of(source, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        flava_kit.load_recipe(source, overrides)
    return str(info.value)


TINY_HEAD = "recipe_version: 1\nextends: flava_tiny\nmodel:\n"


# (case id, recipe text under TINY_HEAD, recipe path that must be named, more text that must appear, line)
FILE_CASES = [
    ("typo_in_type", "  image_encoder: {type: flava_vti}\n", "model.image_encoder.type", "Did you mean 'flava_vit'", 4),
    ("unknown_key", "  fusion:\n    num_layrs: 2\n", "model.fusion.num_layrs", "did you mean 'num_layers'", 5),
    ("wrong_type_str_for_int", "  fusion:\n    hidden_size: big\n", "model.fusion.hidden_size", "expected: int", 5),
    ("float_for_int", "  fusion:\n    num_layers: 2.5\n", "model.fusion.num_layers", "integer", 5),
    ("bad_bool", "  fusion:\n    qkv_bias: perhaps\n", "model.fusion.qkv_bias", "expected: bool", 5),
    ("wrong_kind_in_slot", "  fusion: {type: flava_vit}\n", "model.fusion.type", "'flava_vit' is a encoder, not a fusion", 4),
    ("node_not_mapping", "  image_encoder: flava_vit\n", "model.image_encoder", "expected a encoder node", 4),
    ("type_not_string", "  text_encoder: {type: 3}\n", "model.text_encoder.type", "'type' must be a name", 4),
    ("null_for_required_slot", "  fusion: null\n", "model.fusion", "is null but a component is required", 4),
    ("list_for_float", "  projection_dim: [1, 2]\n", "model.projection_dim", "expected: int", 4),
    ("unknown_model_param", "  projection_dims: 16\n", "model.projection_dims", "did you mean 'projection_dim'", 4),
]


@pytest.mark.parametrize("text,path,detail,line", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_recipe_file(write_recipe, text, path, detail, line):
    file = write_recipe(TINY_HEAD + text)
    message = problems_of(file)
    assert f"{path}:" in message
    assert detail in message
    assert f"{file}:{line}" in message


STANDALONE_CASES = [
    ("missing_type", "recipe_version: 1\nmodel:\n  image_encoder: {}\n", "model.type", "missing 'type'"),
    ("missing_required_slot", "recipe_version: 1\nmodel:\n  type: flava\n  image_encoder: {type: flava_vit}\n  text_encoder: {type: flava_text}\n", "model.fusion", "missing required parameter of model 'flava'"),
    ("unsupported_version", "recipe_version: 2\nextends: flava_tiny\n", "recipe_version", "unsupported recipe_version 2"),
    ("unknown_top_level_key", "recipe_version: 1\nextends: flava_tiny\nmodle: {}\n", "modle", "did you mean 'model'"),
    ("missing_model_section", "recipe_version: 1\n", "model", "missing required section 'model'"),
    ("duplicate_key", "recipe_version: 1\nextends: flava_tiny\nmodel:\n  projection_dim: 8\n  projection_dim: 16\n", "model.projection_dim", "duplicate key (first at line 4)"),
    ("missing_extends_target", "recipe_version: 1\nextends: flava_fulll\n", "extends", "did you mean 'flava_full'"),
    ("extends_not_a_string", "recipe_version: 1\nextends: [flava_full]\n", "extends", "expected a recipe name or path"),
    ("top_level_list", "- model\n", "<recipe>", "a recipe must be a mapping"),
    ("empty_file", "", "<recipe>", "the recipe file is empty"),
]


@pytest.mark.parametrize("text,path,detail", [c[1:] for c in STANDALONE_CASES], ids=[c[0] for c in STANDALONE_CASES])
def test_bad_standalone_recipe(write_recipe, text, path, detail):
    file = write_recipe(text)
    message = problems_of(file)
    assert f"{path}:" in message and detail in message
    assert str(file) in message


def test_bad_yaml_names_line_and_column(write_recipe):
    file = write_recipe("recipe_version: 1\nmodel:\n  type: flava\n  fusion: {type: [unclosed\n")
    message = problems_of(file)
    assert "invalid YAML" in message and f"{file}:5:" in message


def test_extends_cycle_names_the_chain(write_recipe):
    a = write_recipe("recipe_version: 1\nextends: b.yaml\n", "a.yaml")
    b = write_recipe("recipe_version: 1\nextends: a.yaml\n", "b.yaml")
    message = problems_of(a)
    assert "extends:" in message and "extends cycle" in message and str(b) in message


def test_missing_recipe_source_suggests_shipped_names():
    message = problems_of("flava_tyni")
    assert "cannot find recipe 'flava_tyni'" in message and "did you mean 'flava_tiny'" in message


OVERRIDE_CASES = [
    ("no_equals", ["model.fusion.num_layers"], "<recipe>", "an override must be 'a.b.c=value' or '~a.b'"),
    ("missing_parent", ["model.fusoin.num_layers=2"], "model.fusoin", "did you mean 'model.fusion'"),
    ("delete_missing_key", ["~model.fusion.nope"], "model.fusion.nope", "does not exist"),
    ("empty_segment", ["model..num_layers=2"], "model..num_layers", "empty segment"),
    ("bad_yaml_value", ["model.fusion.num_layers=[1,"], "model.fusion.num_layers", "is not valid YAML"),
    ("into_a_scalar", ["model.projection_dim.x=1"], "model.projection_dim", "cannot be set inside it"),
    ("bad_value_type", ["model.fusion.num_layers=many"], "model.fusion.num_layers", "override 'model.fusion.num_layers=many'"),
    ("unknown_type", ["model.fusion.type=cross_attn"], "model.fusion.type", "unknown fusion 'cross_attn'"),
    ("deleted_required", ["~model.fusion.type"], "model.fusion.type", "missing 'type'"),
]


@pytest.mark.parametrize("overrides,path,detail", [c[1:] for c in OVERRIDE_CASES], ids=[c[0] for c in OVERRIDE_CASES])
def test_bad_override(overrides, path, detail):
    message = problems_of("flava_tiny", overrides)
    assert f"{path}:" in message and detail in message
    assert f"override '{overrides[0]}'" in message


def test_all_problems_are_reported_at_once(write_recipe):
    file = write_recipe(TINY_HEAD + "  image_encoder: {type: flava_vti}\n  fusion: {num_layrs: 1, hidden_size: x}\n  projection_dims: 3\n")
    with pytest.raises(RecipeError) as info:
        flava_kit.load_recipe(file, ["model.text_encoder.num_heads=four"])
    paths = {p.path for p in info.value.problems}
    assert paths == {
        "model.image_encoder.type", "model.fusion.num_layrs", "model.fusion.hidden_size",
        "model.projection_dims", "model.text_encoder.num_heads",
    }  # fmt: skip


def test_component_that_does_not_fit_its_slot_is_rejected_by_validation():
    message = problems_of("flava_tiny", ["model.image_encoder.type=flava_text"])
    assert re.search(r"model\.image_encoder: encoder 'flava_text' does not fit .*grid_size.*ImageEncoder", message)
    assert "flava_tiny.yaml:" in message  # where the slot's node is


def test_constructor_failure_is_found_by_validation_and_names_the_component(monkeypatch):
    from flava_kit.fusion.flava_multimodal import FlavaMultimodalFusion

    # A check only the constructor makes (no recipe_checks hook) still surfaces at validate time,
    # through the dry build on the meta device, with the component's path.
    monkeypatch.delattr(FlavaMultimodalFusion, "recipe_checks")
    message = problems_of("flava_tiny", ["model.fusion.num_heads=5"])
    assert re.search(r"model\.fusion: building fusion 'flava_multimodal' failed: .*not a multiple", message)
    with pytest.raises(RecipeError):
        flava_kit.build("flava_tiny", ["model.fusion.num_heads=5"])


def test_validation_happens_before_anything_is_built(monkeypatch):
    from flava_kit.encoders.flava_vit import FlavaViT

    def explode(*args, **kwargs):
        raise AssertionError("a component was built before validation finished")

    monkeypatch.setattr(FlavaViT, "__init__", explode)
    with pytest.raises(RecipeError):
        flava_kit.build("flava_tiny", ["model.fusion.num_layrs=1"])


def test_data_text_length_must_fit_the_text_encoders_positions():
    message = problems_of("demo", ["data.text_length=40"])
    assert "data.text_length: 40 tokens exceed model.text_encoder.max_position_embeddings 16" in message
    assert "data.batch_size" in problems_of("demo", ["data.batch_size=0"])
