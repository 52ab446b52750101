"""A recipe fuzzer: mutated shipped recipes are either valid and build, or rejected with a recipe path.

Never an exception from inside torch, never a traceback. Mutations (hypothesis): a number set to
0, negative, huge, a float or a string; a key renamed; a component type swapped for another
registered name or a made-up one; a node deleted; the YAML text broken. A valid mutant is built
for real when it is small (under 5 M parameters) and on the ``meta`` device otherwise, so a huge
but valid width does not ask this machine for terabytes.
"""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flava_kit
from flava_kit.errors import RecipeError
from flava_kit.recipe import build_section, shipped_recipes
from flava_kit.recipe.extends import tree_from
from flava_kit.registry import registry

RECIPES = {name: tree_from(name).data for name in shipped_recipes()}
ALL_NAMES = sorted({entry.name for entry in registry.list()})
REAL_BUILD_LIMIT = 5_000_000


def paths(data, prefix=()):
    """Every (path, value) below ``data``, mappings and leaves alike."""
    for key, value in data.items():
        yield prefix + (key,), value
        if isinstance(value, dict):
            yield from paths(value, prefix + (key,))


def parent_of(data: dict, path: tuple) -> dict:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def mutants(draw):
    """(recipe name, mutated data or broken YAML text, what was done)."""
    name = draw(st.sampled_from(sorted(RECIPES)))
    data = copy.deepcopy(RECIPES[name])
    everything = list(paths(data))
    kind = draw(st.sampled_from(["number", "rename", "type", "delete", "yaml"]))
    if kind == "yaml":
        lines = yaml.safe_dump(data, sort_keys=False).splitlines()
        at = draw(st.integers(0, len(lines) - 1))
        junk = draw(st.sampled_from(["  [unclosed", ": : :", "\t- tab", "{a: 1", "key: 'open"]))
        return name, "\n".join(lines[:at] + [lines[at] + junk] + lines[at + 1 :]) + "\n", f"yaml line {at + 1} += {junk!r}"
    if kind == "number":
        numbers = [(p, v) for p, v in everything if isinstance(v, (int, float)) and not isinstance(v, bool) and p != ("recipe_version",)]
        path, _ = draw(st.sampled_from(numbers))
        value = draw(st.sampled_from([0, -1, -4, 10**12, 2.5, 1e-30, "abc", None, [1, 2]]))
        parent_of(data, path)[path[-1]] = value
        return name, data, f"{'.'.join(map(str, path))} = {value!r}"
    if kind == "rename":
        path, _ = draw(st.sampled_from(everything))
        parent = parent_of(data, path)
        parent[str(path[-1]) + draw(st.sampled_from(["x", "_", "s"]))] = parent.pop(path[-1])
        return name, data, f"rename {'.'.join(map(str, path))}"
    if kind == "type":
        typed = [p for p, v in everything if p[-1] == "type"]
        path = draw(st.sampled_from(typed))
        value = draw(st.sampled_from(ALL_NAMES + ["no_such_component"]))
        parent_of(data, path)[path[-1]] = value
        return name, data, f"{'.'.join(map(str, path))} = {value!r}"
    path, _ = draw(st.sampled_from(everything))
    del parent_of(data, path)[path[-1]]
    return name, data, f"delete {'.'.join(map(str, path))}"


def check(source) -> None:
    """Valid and builds, or a RecipeError whose every problem names a recipe path or place."""
    try:
        recipe = flava_kit.load_recipe(source)
    except RecipeError as exc:
        assert exc.problems and all(p.path or p.origin for p in exc.problems), str(exc)
        return
    with torch.device("meta"):
        model = flava_kit.build(recipe)
    if sum(p.numel() for p in model.parameters()) < REAL_BUILD_LIMIT:
        flava_kit.build(recipe)
    for section in ("data", "train"):
        if section in recipe.data:
            build_section(recipe, section)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutant=mutants())
def test_mutated_recipes_validate_and_build_or_are_rejected_with_a_path(mutant, tmp_path):
    name, content, what = mutant
    path = tmp_path / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    try:
        check(path)
    except AssertionError:
        raise
    except Exception as exc:  # anything but a RecipeError with paths is a finding
        pytest.fail(f"{name} with {what}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_shipped_recipe_is_valid_and_builds(name):
    check(name)
