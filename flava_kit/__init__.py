"""flava_kit: FLAVA as registered, swappable components assembled from declarative YAML recipes.

>>> import flava_kit
>>> model = flava_kit.build("flava_tiny", ["model.fusion.num_layers=1"])
>>> flava_kit.to_recipe(model)["model"]["fusion"]["num_layers"]
1
"""

from flava_kit.checkpoints import from_pretrained, save_pretrained
from flava_kit.recipe import Recipe, build, load_recipe, recipe_of, to_recipe
from flava_kit.registry import register, registry

__all__ = ["Recipe", "build", "from_pretrained", "load_recipe", "recipe_of", "register", "registry", "save_pretrained", "to_recipe"]
__version__ = "0.1.0"
