"""The one place that talks to the ``entrypoints`` package.

A plug-in distribution declares components in entry-point groups named ``flava_kit.<kind>``::

    [project.entry-points."flava_kit.encoder"]
    my_vit = "my_flava_parts.vit:MyViT"

Reading a group reads only the installed metadata; a target's module is imported by
:meth:`PluginEntryPoint.load`, which the registry calls on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import entrypoints

GROUP_PREFIX = "flava_kit."


@dataclass(frozen=True)
class PluginEntryPoint:
    """An entry point naming one plug-in component, not yet imported."""

    kind: str
    name: str
    module_name: str
    object_name: str | None
    distribution: str
    version: str

    @property
    def target(self) -> str:
        """``module:object`` as the distribution wrote it."""
        return f"{self.module_name}:{self.object_name}" if self.object_name else self.module_name

    def load(self) -> Callable[..., Any]:
        """Import the target and return it; import errors propagate unchanged."""
        return entrypoints.EntryPoint(self.name, self.module_name, self.object_name).load()


def discover(kind: str) -> list[PluginEntryPoint]:
    """All entry points installed in the group of ``kind``, without importing any of them."""
    found = []
    for ep in entrypoints.get_group_all(GROUP_PREFIX + kind):
        distro = ep.distro
        found.append(
            PluginEntryPoint(
                kind=kind,
                name=ep.name,
                module_name=ep.module_name,
                object_name=ep.object_name,
                distribution=getattr(distro, "name", None) or "<unknown distribution>",
                version=getattr(distro, "version", None) or "?",
            )
        )
    return found
