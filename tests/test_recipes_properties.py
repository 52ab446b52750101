"""Property tests: recipes generated from the registered schemas validate, build and round-trip;
random override sequences act exactly like editing the recipe by hand."""

from __future__ import annotations

import copy
import json

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flava_kit
from flava_kit.errors import RecipeError
from flava_kit.contracts import missing_members
from flava_kit.recipe.extends import tree_from
from flava_kit.registry import registry
from flava_kit.schema import component_schema

# Small values for size parameters, so generated models build in milliseconds. Every other
# parameter is either left out (its default applies) or set explicitly to its default.
SIZE_POOLS = {
    "num_layers": st.integers(1, 2),
    "intermediate_size": st.sampled_from([8, 16]),
    "image_size": st.sampled_from([16, 32]),
    "patch_size": st.sampled_from([8, 16]),
    "vocab_size": st.integers(10, 50),
    "max_position_embeddings": st.integers(8, 16),
    "projection_dim": st.sampled_from([4, 8]),
}
# Adapters size their models through their own parameters: small ones here.
ADAPTERS = {
    "timm_vit": {"model_name": "vit_tiny_patch16_224", "image_size": 16, "model_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 8, "num_heads": 2}},
    "hf_text": {"model_type": "bert", "config": {"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                 "intermediate_size": 8, "max_position_embeddings": 16}},
}  # fmt: skip
SLOT_FILLERS: dict[str, list[str]] = {}  # protocol name -> registered names that satisfy it


def fillers(protocol: type, kind: str) -> list[str]:
    """Registered names of ``kind`` that build (at small size) into something meeting ``protocol``."""
    key = protocol.__name__
    if key not in SLOT_FILLERS:
        found = []
        for entry in registry.list(kind):
            try:
                node = {"type": registry.display_name(entry), **small_defaults(entry.load()), **ADAPTERS.get(entry.name, {})}
                built = flava_kit.recipe.build_node(node, kind)
            except Exception:
                continue  # broken plug-ins, components of other slots
            if not missing_members(built, protocol):
                found.append(registry.display_name(entry))
        SLOT_FILLERS[key] = sorted(found)
    return SLOT_FILLERS[key]


def small_defaults(target) -> dict:
    names = {p.name for p in component_schema(target).parameters}
    return {k: v for k, v in {"hidden_size": 8, "num_heads": 2, "num_layers": 1, "intermediate_size": 8,
                              "image_size": 16, "patch_size": 8, "vocab_size": 20, "max_position_embeddings": 8}.items()
            if k in names}  # fmt: skip


@st.composite
def component_node(draw, kind: str, protocol: type | None = None, name: str | None = None) -> dict:
    if name is None:
        name = draw(st.sampled_from(fillers(protocol, kind)))
    schema = component_schema(registry.get(kind, name))
    node: dict = {"type": name, **ADAPTERS.get(name, {})}
    names = {p.name for p in schema.parameters}
    if "num_heads" in names:  # hidden_size must be a multiple of num_heads
        node["num_heads"] = draw(st.sampled_from([1, 2]))
        node["hidden_size"] = node["num_heads"] * draw(st.sampled_from([4, 8]))
    elif "hidden_size" in names:
        node["hidden_size"] = draw(st.sampled_from([4, 8]))
    for p in schema.parameters:
        if p.name in node:
            continue
        if p.slot is not None:
            node[p.name] = draw(component_node(p.slot.kind, p.slot.protocol))
        elif p.name in SIZE_POOLS:
            node[p.name] = draw(SIZE_POOLS[p.name])
        elif not p.required and draw(st.booleans()):
            node[p.name] = p.default
    if "image_size" in node and "patch_size" in node and node["image_size"] % node["patch_size"]:
        node["image_size"] = node["patch_size"] * 2
    return node


def structure(model: torch.nn.Module) -> list:
    return [(n, type(m).__name__) for n, m in model.named_modules()] + [(n, tuple(p.shape)) for n, p in model.named_parameters()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=component_node("model", name="flava"))
def test_generated_recipes_validate_build_and_round_trip(node):
    recipe = flava_kit.load_recipe({"recipe_version": 1, "model": node})
    for key, value in node.items():
        if not isinstance(value, dict):
            assert recipe.data["model"][key] == value
    model = flava_kit.build(recipe)
    assert flava_kit.to_recipe(model) == recipe.data
    assert structure(flava_kit.build(flava_kit.to_recipe(model))) == structure(model)


TINY = tree_from("flava_tiny").data


def leaf_paths(data, prefix=()):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from leaf_paths(value, prefix + (key,))
        elif key not in ("type", "recipe_version"):
            yield prefix + (key,), value


LEAVES = sorted(leaf_paths(TINY))
OPTIONAL_PARAMS = [  # (node path, parameter) pairs that have a default, so deleting them is valid
    (path[:-1], path[-1]) for path, _ in LEAVES
]


@st.composite
def override_sequences(draw):
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            path, value = draw(st.sampled_from(LEAVES))
            new = draw(st.floats(1e-9, 1.0) if isinstance(value, float) else st.integers(1, 1000))
            ops.append(("set", path, new))
        else:
            node, param = draw(st.sampled_from(OPTIONAL_PARAMS))
            ops.append(("set", node + (param,), draw(st.integers(1, 64))))
            ops.append(("delete", node + (param,), None))
    return ops


@settings(max_examples=60, deadline=None)
@given(ops=override_sequences())
def test_override_sequences_equal_editing_by_hand(ops):
    edited = copy.deepcopy(TINY)
    texts = []
    for op, path, value in ops:
        parent = edited
        for key in path[:-1]:
            parent = parent[key]
        if op == "set":
            parent[path[-1]] = value
            texts.append(".".join(path) + "=" + json.dumps(value))
        elif path[-1] in parent:
            del parent[path[-1]]
            texts.append("~" + ".".join(path))
    # Equal outcomes: the same resolved recipe, or the same problems (their origins differ: an
    # override versus the edited dict).
    assert outcome("flava_tiny", texts) == outcome(edited)


def outcome(source, overrides=()):
    try:
        return "valid", flava_kit.load_recipe(source, overrides).data
    except RecipeError as exc:
        return "invalid", [(p.path, p.message) for p in exc.problems]
