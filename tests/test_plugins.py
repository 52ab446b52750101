"""Plug-ins from real installed distributions (tests/plugins/*, installed by the test command)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import flava_kit
from flava_kit import registry
from flava_kit.errors import PluginError, RecipeError

DEMO = "flava_kit_demo_plugin"
BROKEN = "flava_kit_broken_plugin"


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (a clean sys.modules) and return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return result.stdout


def test_plugins_are_discovered_with_provenance():
    entry = registry.entry("encoder", "patch_mlp")
    assert entry.provenance.origin == "plug-in"
    assert entry.provenance.distribution == DEMO and entry.provenance.version == "0.4.0"
    assert entry.provenance.module == "flava_kit_demo_plugin.encoders"
    loss = registry.describe("loss", "feature_l2")
    assert loss.provenance.distribution == DEMO
    assert loss.location.endswith("flava_kit_demo_plugin/losses.py:7")
    assert [p.name for p in loss.parameters] == ["weight"]


def test_listing_does_not_import_plugins_but_use_does():
    out = run_python(
        f"""
        import sys
        from flava_kit import registry
        names = [e.name for e in registry.list()]
        assert "patch_mlp" in names and "feature_l2" in names and "broken_encoder" in names
        registry.describe("encoder", "flava_vit")
        print("{DEMO}" in sys.modules, "{BROKEN}" in sys.modules)
        registry.get("encoder", "patch_mlp")
        print("{DEMO}.encoders" in sys.modules, "{DEMO}.losses" in sys.modules)
        """
    )
    assert out.split() == ["False", "False", "True", "False"]


def test_broken_plugin_breaks_only_recipes_that_use_it():
    with pytest.raises(RecipeError) as info:
        flava_kit.load_recipe("flava_tiny", ["model.image_encoder.type=broken_encoder"])
    message = str(info.value)
    assert "model.image_encoder.type" in message
    assert BROKEN in message and "0.0.1" in message
    assert "No module named 'flava_kit_dependency_that_is_not_installed'" in message
    assert isinstance(flava_kit.build("flava_tiny"), torch.nn.Module)  # everything else still works


def test_broken_plugin_error_chains_the_original_exception():
    with pytest.raises(PluginError) as info:
        registry.get("encoder", "broken_encoder")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_two_plugins_claiming_a_name_must_be_picked():
    with pytest.raises(PluginError) as info:
        registry.get("encoder", "shared_name")
    message = str(info.value)
    assert DEMO in message and BROKEN in message
    assert f"'{DEMO}:shared_name'" in message and f"'{BROKEN}:shared_name'" in message
    assert registry.get("encoder", f"{DEMO}:shared_name").__name__ == "PatchMlpEncoder"


def test_plugins_never_shadow_builtins():
    assert registry.get("encoder", "flava_vit").__module__ == "flava_kit.encoders.flava_vit"
    assert registry.get("encoder", f"{DEMO}:flava_vit").__module__ == "flava_kit_demo_plugin.encoders"
    assert f"{DEMO}:flava_vit" in registry.names("encoder")


def test_plugin_component_in_a_recipe_builds_runs_and_round_trips():
    overrides = ["model.image_encoder.type=patch_mlp", "model.image_encoder.hidden_size=24"]
    recipe = flava_kit.load_recipe("flava_tiny", overrides)
    assert recipe.data["model"]["image_encoder"]["type"] == f"{DEMO}:patch_mlp"  # pinned to its provider
    assert any("num_layers: dropped" in note for note in recipe.notes)
    model = flava_kit.build(recipe)
    out = model(pixel_values=torch.randn(2, 3, 64, 64), input_ids=torch.randint(0, 1000, (2, 5)))
    assert out.multimodal_embeddings.shape == (2, 1 + 17 + 5, 64)
    again = flava_kit.build(flava_kit.to_recipe(model))
    assert [(n, p.shape) for n, p in again.named_parameters()] == [(n, p.shape) for n, p in model.named_parameters()]
