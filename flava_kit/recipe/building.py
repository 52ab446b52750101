"""Building a validated recipe bottom-up: children first, each passed to its parent's constructor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from flava_kit.contracts import missing_members
from flava_kit.errors import BuildError, FlavaKitError
from flava_kit.recipe.provenance import attach_recipe
from flava_kit.recipe.tree import PathT, Recipe, dotted
from flava_kit.recipe.validation import load_recipe, section_class
from flava_kit.registry import registry
from flava_kit.schema import SlotSpec, component_schema


def build_node(node: Mapping, kind: str = "model", path: str = "model") -> Any:
    """Build one resolved component node (children first). Used by :func:`build`."""
    return _build(node, SlotSpec(object, kind, None, False), (path,))


def _build(value: Any, spec: SlotSpec, path: PathT) -> Any:
    if value is None:
        return None
    if spec.container == "list":
        return [_build(item, SlotSpec(spec.protocol, spec.kind, None, False), path + (i,)) for i, item in enumerate(value)]
    if spec.container == "dict":
        return {k: _build(item, SlotSpec(spec.protocol, spec.kind, None, False), path + (k,)) for k, item in value.items()}
    name = value["type"]
    built = _construct(registry.get(spec.kind, name), value, path, f"{spec.kind} '{name}'")
    if spec.protocol is not object:
        missing = missing_members(built, spec.protocol)
        if missing:
            raise BuildError(
                f"{dotted(path)}: {spec.kind} '{name}' does not fit this slot: it lacks {', '.join(missing)} "
                f"required by the {spec.protocol.__name__} contract"
            )
    attach_recipe(built, spec.kind, value)
    return built


def _construct(target: Any, value: Mapping, path: PathT, label: str) -> Any:
    """Call ``target`` with a resolved node's parameters, building its child nodes first."""
    schema = component_schema(target)
    plain = {k: v for k, v in value.items() if k != "type" and k not in schema.slots}  # a section has no type
    validated = schema.model.model_validate(plain)
    kwargs = {k: getattr(validated, k) for k in type(validated).model_fields if k in plain}
    kwargs.update(validated.model_extra or {})
    for key, slot_spec in schema.slots.items():
        if key in value:
            kwargs[key] = _build(value[key], slot_spec, path + (key,))
    try:
        return target(**kwargs)
    except FlavaKitError:
        raise
    except Exception as exc:
        raise BuildError(f"{dotted(path)}: building {label} failed: {type(exc).__name__}: {exc}") from exc


def build_section(recipe: Recipe, name: str) -> Any:
    """Build a resolved recipe's top-level section (``data`` or ``train``); its default when absent."""
    return _construct(section_class(name), recipe.data.get(name, {}), (name,), f"section '{name}'")


def build(source: str | Path | Mapping | Recipe, overrides: Iterable[str] = ()) -> Any:
    """Validate a recipe, then build its model bottom-up and return it.

    ``source``: a path, a shipped recipe's short name, a dict, or a loaded :class:`Recipe`.
    """
    if isinstance(source, Recipe):
        # A loaded recipe is already resolved: overrides are applied to its data and validated again.
        recipe = load_recipe(source.data, overrides) if overrides else source
    else:
        recipe = load_recipe(source, overrides)
    return build_node(recipe.data["model"])


