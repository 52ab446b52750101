"""The public entry points: resolve and validate a recipe (``load_recipe``), then build it (``build``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from flava_kit.errors import RecipeError
from flava_kit.recipe.building import build_node, dry_build
from flava_kit.recipe.extends import get, tree_from
from flava_kit.recipe.overrides import apply_override
from flava_kit.recipe.tree import Recipe
from flava_kit.recipe.validation import EVAL_RECIPES, Validator


def load_recipe(source: str | Path | Mapping, overrides: Iterable[str] = ()) -> Recipe:
    """Resolve and validate a recipe without building anything real.

    ``source`` is a path, a shipped recipe's short name (``"flava_full"``), or a dict. Validation
    reports schema, range and cross-component problems (``recipe_checks``) all at once; when
    there are none, a dry build on the ``meta`` device runs every constructor's own checks without
    allocating memory. The eval recipes ``train.eval`` and ``train.select.eval`` name are checked
    too, their tasks built (an inline one is kept resolved). Raises
    :class:`~flava_kit.errors.RecipeError` listing every problem found, each with its recipe path
    and origin.
    """
    from flava_kit.evaluation.recipe import named_eval_recipe

    tree = tree_from(source)
    problems = [p for p in (apply_override(tree, o) for o in overrides) if p is not None]
    validator = Validator(tree)
    data = validator.recipe()
    problems += validator.problems
    if not problems:
        problems = [validator.locate(p) for p in dry_build(data)]
    for path in EVAL_RECIPES:  # checked (their tasks built) now, not at the first evaluation after hours of training
        if get(tree.data, path) is not None:
            resolved, found, notes = named_eval_recipe(tree, path)
            problems += found
            validator.notes += notes
            if isinstance(get(data, path[:-1]), dict):
                get(data, path[:-1])[path[-1]] = resolved
    if problems:
        raise RecipeError(problems)
    return Recipe(data, validator.notes, tree.origins)


def build(source: str | Path | Mapping | Recipe, overrides: Iterable[str] = ()) -> Any:
    """Validate a recipe, then build its model bottom-up and return it.

    ``source``: a path, a shipped recipe's short name, a dict, or a loaded :class:`Recipe`
    (``overrides`` then apply to its resolved data, which is validated again).
    """
    if isinstance(source, Recipe):
        recipe = load_recipe(source.data, overrides) if overrides else source
    else:
        recipe = load_recipe(source, overrides)
    return build_node(recipe.data["model"])
