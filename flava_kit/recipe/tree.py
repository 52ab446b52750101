"""What a recipe is while it is being resolved (:class:`Tree`) and once it is valid (:class:`Recipe`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

RECIPE_VERSION = 1
SHIPPED_DIR = Path(__file__).parent.parent / "recipes"

PathT = tuple  # a recipe path as a tuple of keys / list indices
OVERRIDE = "override"  # how an override's origin begins: override 'a.b=1'


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

    def blame(self, path: PathT, node: PathT) -> str | None:
        """:meth:`origin` of ``path``, with the overrides that set anything inside ``node`` when it came
        from a file: a constructor or a cross-key check reads all of a node, so one may be the cause."""
        origin = self.origin(path)
        if origin is None or origin.startswith(OVERRIDE):
            return origin
        overrides = [o for p, o in self.origins.items() if p[: len(node)] == node and o.startswith(OVERRIDE)]
        return ", ".join((origin, *dict.fromkeys(overrides)))


@dataclass
class Recipe:
    """A validated recipe with every default explicit. ``notes`` says what resolution dropped;
    ``origins`` where each key path was written (``file:line`` or an override)."""

    data: dict
    notes: list[str] = field(default_factory=list)
    origins: dict[PathT, str] = field(default_factory=dict, compare=False)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text (keys in signature order)."""
        return yaml.safe_dump(self.data, sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_yaml` to ``path``."""
        Path(path).write_text(self.to_yaml())

