"""What a recipe is while it is being resolved (:class:`Tree`) and once it is valid (:class:`Recipe`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

RECIPE_VERSION = 1
SHIPPED_DIR = Path(__file__).parent.parent / "recipes"

PathT = tuple  # a recipe path as a tuple of keys / list indices


def dotted(path: Iterable[Any]) -> str:
    """``("model", "fusion", "num_layers") -> "model.fusion.num_layers"``."""
    return ".".join(str(p) for p in path)


def shipped_recipes() -> list[str]:
    """Short names of the recipes shipped with flava_kit."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


@dataclass
class Tree:
    """A recipe being resolved: its data, where each value came from, and type swaps."""

    data: dict
    origins: dict[PathT, str] = field(default_factory=dict)
    # node path -> keys inherited from a component whose ``type`` was then changed
    swaps: dict[PathT, set] = field(default_factory=dict)

    def origin(self, path: PathT) -> str | None:
        """Where the value at ``path`` (or its nearest located ancestor) came from."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return None


@dataclass
class Recipe:
    """A validated recipe with every default explicit. ``notes`` says what resolution dropped."""

    data: dict
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text (keys in signature order)."""
        return yaml.safe_dump(self.data, sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_yaml` to ``path``."""
        Path(path).write_text(self.to_yaml())

