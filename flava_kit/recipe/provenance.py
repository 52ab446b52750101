"""Model -> recipe: every component built from a recipe carries its resolved node."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from flava_kit.errors import FlavaKitError
from flava_kit.recipe.tree import RECIPE_VERSION


_ATTRIBUTE = "_flava_recipe"


def attach_recipe(component: Any, kind: str, node: Mapping) -> None:
    """Record on ``component`` the resolved recipe ``node`` it was built from (a private copy)."""
    try:
        setattr(component, _ATTRIBUTE, (kind, copy.deepcopy(dict(node))))
    except AttributeError:  # objects without a __dict__ cannot carry their recipe
        pass


def recipe_of(component: Any) -> tuple[str, dict] | None:
    """``(kind, resolved node)`` of a component built from a recipe, or None if it was built by hand."""
    stored = getattr(component, _ATTRIBUTE, None)
    return None if stored is None else (stored[0], copy.deepcopy(stored[1]))


def to_recipe(module: Any) -> dict:
    """The resolved recipe a component was built from.

    For a model (the recipe's root) a whole recipe ``{"recipe_version": 1, "model": {...}}``; for any
    other component built by a recipe, its node ``{"type": ..., ...}``. Building either again gives
    the same structure and parameter shapes.
    """
    stored = recipe_of(module)
    if stored is None:
        raise FlavaKitError(
            f"{type(module).__name__} was not built from a recipe, so it has no recipe to return; "
            f"build it with flava_kit.build(...)"
        )
    kind, node = stored
    return {"recipe_version": RECIPE_VERSION, "model": node} if kind == "model" else node
