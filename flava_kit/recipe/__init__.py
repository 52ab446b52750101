"""Recipes: YAML in, validated and fully resolved recipe out, built bottom-up into modules.

A recipe is a YAML mapping::

    recipe_version: 1
    extends: flava_full          # optional: a shipped recipe's short name, or a path
    model:
      type: flava
      fusion: {type: flava_multimodal, num_layers: 4}

Resolution is ``extends`` (:mod:`.extends`: deep merge; a node whose ``type`` changes keeps only the
keys the new component takes) -> overrides (:mod:`.overrides`: ``a.b.c=value``, ``~a.b``) ->
validation (:mod:`.validation`) against schemas derived from component signatures, which reports
**every** problem with its recipe path and origin (``file:line`` from :mod:`.loading`, or the
override) before anything is built -> building (:mod:`.building`), children first. Each built
component remembers its resolved node (:mod:`.provenance`), so ``to_recipe(model)`` gives it back.
"""

from flava_kit.recipe.building import build_node, build_section
from flava_kit.recipe.provenance import recipe_of, to_recipe
from flava_kit.recipe.tree import RECIPE_VERSION, SHIPPED_DIR, Recipe, dotted, shipped_recipes
from flava_kit.recipe.resolve import build, load_recipe
from flava_kit.recipe.validation import SECTIONS, section_class

__all__ = [
    "RECIPE_VERSION", "SECTIONS", "SHIPPED_DIR", "Recipe", "build", "build_node", "build_section", "dotted",
    "load_recipe", "recipe_of", "section_class", "shipped_recipes", "to_recipe",
]
