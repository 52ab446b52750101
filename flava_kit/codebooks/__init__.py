"""Image codebooks: the targets of masked image modelling (registry kind ``codebook``)."""

from flava_kit.codebooks.color_palette import ColorPaletteCodebook
from flava_kit.codebooks.dalle import DalleCodebook

__all__ = ["ColorPaletteCodebook", "DalleCodebook"]
