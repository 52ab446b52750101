"""Recipe resolution: extends, overrides, type swaps, resolved recipes, to_recipe, JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest
import torch
import yaml

import flava_kit
from flava_kit.errors import FlavaKitError
from flava_kit.recipe import shipped_recipes
from flava_kit.recipe.json_schema import recipe_json_schema


def structure(model: torch.nn.Module) -> list:
    """Module types and parameter shapes: what 'the same structure' means."""
    return [(n, type(m).__name__) for n, m in model.named_modules()] + [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def test_shipped_recipes_are_listed():
    assert {"flava_full", "flava_tiny"} <= set(shipped_recipes())


def test_extends_deep_merges_and_fills_defaults(write_recipe):
    file = write_recipe("recipe_version: 1\nextends: flava_tiny\nmodel:\n  fusion: {num_layers: 1}\n")
    data = flava_kit.load_recipe(file).data["model"]
    assert data["fusion"]["num_layers"] == 1
    assert data["fusion"]["hidden_size"] == 64  # from flava_tiny
    assert data["fusion"]["num_heads"] == 4  # from flava_tiny, which got it from flava_full
    assert data["fusion"]["layer_norm_eps"] == 1e-12  # a default, made explicit
    assert list(data) == ["type", "image_encoder", "text_encoder", "fusion", "projection_dim", "logit_scale_init"]


def test_extends_by_relative_path(write_recipe, tmp_path):
    (tmp_path / "sub").mkdir()
    write_recipe("recipe_version: 1\nextends: flava_tiny\nmodel: {projection_dim: 8}\n", "base.yaml")
    child = write_recipe("recipe_version: 1\nextends: ../base.yaml\nmodel: {fusion: {num_layers: 1}}\n", "sub/child.yaml")
    data = flava_kit.load_recipe(child).data["model"]
    assert (data["projection_dim"], data["fusion"]["num_layers"]) == (8, 1)


def test_changing_type_in_extends_drops_inherited_keys_with_a_note(write_recipe):
    file = write_recipe("recipe_version: 1\nextends: flava_tiny\nmodel:\n  image_encoder: {type: patch_mlp, hidden_size: 16}\n")
    recipe = flava_kit.load_recipe(file)
    encoder = recipe.data["model"]["image_encoder"]
    assert encoder == {"type": "flava_kit_demo_plugin:patch_mlp", "hidden_size": 16, "image_size": 64, "patch_size": 16, "num_channels": 3}
    assert sorted(n.split(":")[0] for n in recipe.notes) == sorted(
        f"model.image_encoder.{k}" for k in ("num_layers", "num_heads", "intermediate_size")
    )


def test_key_written_explicitly_after_a_type_swap_is_still_checked():
    with pytest.raises(flava_kit.errors.RecipeError, match="model.image_encoder.num_layers: unknown parameter"):
        flava_kit.load_recipe("flava_tiny", ["model.image_encoder.type=patch_mlp", "model.image_encoder.num_layers=3"])


def test_overrides_set_add_and_delete():
    recipe = flava_kit.load_recipe(
        "flava_tiny",
        ["model.fusion.num_layers=1", "model.fusion.dropout=0.25", "~model.projection_dim", "model.text_encoder.qkv_bias=false"],
    )
    model = recipe.data["model"]
    assert model["fusion"]["num_layers"] == 1 and model["fusion"]["dropout"] == 0.25
    assert model["projection_dim"] == 768  # deleted -> the signature's default
    assert model["text_encoder"]["qkv_bias"] is False


def test_override_value_is_split_on_the_first_equals_and_parsed_as_yaml():
    recipe = flava_kit.load_recipe({"model": {"type": "flava", "image_encoder": {"type": "flava_vit"},
                                              "text_encoder": {"type": "flava_text"}, "fusion": {"type": "flava_multimodal"}}},
                                   ["model.fusion.layer_norm_eps=1e-6"])  # fmt: skip
    assert recipe.data["model"]["fusion"]["layer_norm_eps"] == 1e-6


def test_dict_source_with_extends():
    recipe = flava_kit.load_recipe({"extends": "flava_tiny", "model": {"projection_dim": 12}})
    assert recipe.data["model"]["projection_dim"] == 12 and recipe.data["model"]["fusion"]["hidden_size"] == 64


def test_resolved_recipe_saved_and_reloaded_is_a_fixed_point(tmp_path):
    recipe = flava_kit.load_recipe("flava_tiny", ["model.fusion.num_layers=1"])
    path = tmp_path / "resolved.yaml"
    recipe.save(path)
    assert yaml.safe_load(path.read_text()) == recipe.data
    assert flava_kit.load_recipe(path).data == recipe.data


def test_build_to_recipe_build_gives_the_same_structure():
    model = flava_kit.build("flava_tiny", ["model.fusion.num_layers=1"])
    recipe = flava_kit.to_recipe(model)
    assert recipe == flava_kit.load_recipe("flava_tiny", ["model.fusion.num_layers=1"]).data
    assert structure(flava_kit.build(recipe)) == structure(model)
    assert flava_kit.to_recipe(model.fusion)["type"] == "flava_multimodal"  # a component gives its node


def test_to_recipe_of_a_hand_made_module_explains():
    with pytest.raises(FlavaKitError, match="was not built from a recipe"):
        flava_kit.to_recipe(torch.nn.Linear(2, 2))


def test_recipes_never_import_dotted_paths():
    with pytest.raises(flava_kit.errors.RecipeError, match="unknown encoder 'os.system'"):
        flava_kit.load_recipe("flava_tiny", ["model.image_encoder.type=os.system"])


def test_json_schema_accepts_shipped_recipes_and_rejects_bad_ones():
    schema = recipe_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("flava_full", "flava_tiny"):
        validator.validate(flava_kit.load_recipe(name).data)
    bad = flava_kit.load_recipe("flava_tiny").data
    bad["model"]["fusion"]["num_layrs"] = 2
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)
    assert "encoder.flava_kit_demo_plugin:patch_mlp" in schema["$defs"]  # plug-ins included
    assert "flava_kit_broken_plugin" in schema["$defs"]["kind.encoder"]["description"]  # broken ones named


def test_build_applies_overrides_to_a_loaded_recipe():
    recipe = flava_kit.load_recipe("flava_tiny")
    model = flava_kit.build(recipe, ["model.fusion.num_layers=2"])
    assert flava_kit.to_recipe(model)["model"]["fusion"]["num_layers"] == 2
    with pytest.raises(flava_kit.errors.RecipeError, match="model.fusion.num_layrs"):
        flava_kit.build(recipe, ["model.fusion.num_layrs=2"])


def test_a_yaml_syntax_error_names_where_the_bracket_opened(write_recipe):
    path = write_recipe("recipe_version: 1\nmodel: {type: flava, fusion: [1, 2\n")
    with pytest.raises(flava_kit.errors.RecipeError) as info:
        flava_kit.load_recipe(path)
    message = str(info.value)
    assert f"{path}:2:30" in message  # the unclosed list opened on line 2, column 30
    assert f"at {path}:3:1" in message  # where PyYAML gave up: the end of the file


def test_recipe_of_is_the_public_accessor():
    model = flava_kit.build("flava_tiny")
    kind, node = flava_kit.recipe_of(model)
    assert kind == "model" and node["type"] == "flava"
    node["type"] = "changed"  # a copy: the model's own record is untouched
    assert flava_kit.recipe_of(model)[1]["type"] == "flava"
    assert flava_kit.recipe_of(torch.nn.Linear(2, 2)) is None
