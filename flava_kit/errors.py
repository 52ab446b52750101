"""The errors flava_kit raises: each says what went wrong, where, and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass


class FlavaKitError(Exception):
    """Base class of every error flava_kit raises on bad input."""


class RegistryError(FlavaKitError, LookupError):
    """A component name could not be registered or resolved."""


class PluginError(RegistryError):
    """A plug-in distribution could not be loaded, or two plug-ins claim one name."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe, located by its dotted recipe path.

    ``origin`` is where the offending value came from: ``file.yaml:LINE`` or an override.
    """

    path: str
    message: str
    expected: str | None = None
    suggestion: str | None = None
    origin: str | None = None

    def __str__(self) -> str:
        where = self.path or "<recipe>"
        text = f"{where}: {self.message}"
        if self.origin:
            text += f"  [{self.origin}]"
        if self.expected:
            text += f"\n    expected: {self.expected}"
        if self.suggestion:
            text += f"\n    hint: {self.suggestion}"
        return text


class RecipeError(FlavaKitError, ValueError):
    """A recipe is invalid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        count = len(self.problems)
        head = f"invalid recipe ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}".replace("\n", "\n  ") for p in self.problems)]))


class BuildError(FlavaKitError, RuntimeError):
    """A component's constructor failed, or two components do not fit together.

    ``path`` is the recipe path of the component that failed (``model.image_encoder``), when built
    from a recipe.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class ShapeError(FlavaKitError, ValueError):
    """A tensor passed to a component has the wrong shape or dtype."""


class CheckpointError(FlavaKitError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the model."""
