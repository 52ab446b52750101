"""``extends``: a recipe deep-merged onto its parent; a changed ``type`` marks inherited keys as swapped.

Two kinds of mapping are not merged whole: what a run trains on (``data.sources``) and the tasks of
the eval recipes it is measured with (``train.eval``, ``train.select.eval``). A child that gives one
names everything in it: the parent's entries it does not name are left out, and an entry it names
like one of the parent's is merged onto that one (``questions: {size: 500}``; ``questions: {}``
keeps it as it is). Bringing your own data thus never trains on the parent's demo data as well.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from flava_kit.errors import Problem, RecipeError
from flava_kit.recipe.loading import find_recipe, not_found, read_yaml
from flava_kit.recipe.tree import PathT, Tree

NAMED_BY_THE_CHILD = {("data", "sources"), ("train", "eval", "tasks"), ("train", "select", "eval", "tasks")}
"""Mappings whose entries a child recipe lists in full (see the module's docstring)."""


def load_file(path: Path, chain: tuple[Path, ...] = ()) -> Tree:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise RecipeError(Problem("extends", f"extends cycle: {cycle}", origin=str(chain[-1])))
    tree = read_yaml(path)
    parent_ref = tree.data.pop("extends", None)
    if parent_ref is None:
        return tree
    origin = tree.origins.get(("extends",))
    if not isinstance(parent_ref, str):
        raise RecipeError(Problem("extends", f"expected a recipe name or path, got {parent_ref!r}", origin=origin))
    parent_path = find_recipe(parent_ref, path)
    if parent_path is None:
        raise RecipeError(not_found(parent_ref, "extends", origin))
    base = load_file(parent_path, (*chain, path))
    return Tree(
        merge(base.data, tree.data, (), base.swaps),
        {**base.origins, **tree.origins},
        {p: keys - set(get(tree.data, p) or ()) for p, keys in base.swaps.items()},
    )


def get(data: Any, path: PathT) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def merge(base: Any, over: Any, path: PathT, swaps: dict[PathT, set]) -> Any:
    """Deep-merge ``over`` onto ``base``; a changed ``type`` marks the inherited keys as swapped."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    if "type" in over and "type" in base and over["type"] != base["type"]:
        swaps[path] = set(base) - set(over) - {"type"}
    merged = {} if path in NAMED_BY_THE_CHILD else copy.deepcopy(base)
    for key, value in over.items():
        merged[key] = merge(base[key], value, path + (key,), swaps) if key in base else copy.deepcopy(value)
    return merged


def _paths(data: Any, path: PathT = ()) -> Any:
    """Every key path in ``data`` (nested mappings)."""
    for key, value in data.items() if isinstance(data, dict) else ():
        yield path + (key,)
        yield from _paths(value, path + (key,))


def tree_from(source: str | Path | Mapping) -> Tree:
    if isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
        parent_ref = data.pop("extends", None)
        if parent_ref is None:
            return Tree(data, {(): "<dict>"})
        parent_path = find_recipe(str(parent_ref), None)
        if parent_path is None:
            raise RecipeError(not_found(str(parent_ref), "extends", "<dict>"))
        base = load_file(parent_path)
        return Tree(merge(base.data, data, (), base.swaps), {**base.origins, **dict.fromkeys(_paths(data), "<dict>")}, base.swaps)
    path = find_recipe(str(source), None)
    if path is None:
        raise RecipeError(not_found(str(source), "", None))
    return load_file(path)

