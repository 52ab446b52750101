"""Building a validated recipe bottom-up: children first, each passed to its parent's constructor."""

from __future__ import annotations

from typing import Any, Mapping

from flava_kit.contracts import missing_members
import torch

from flava_kit.errors import BuildError, FlavaKitError, Problem
from flava_kit.recipe.provenance import attach_recipe
from flava_kit.recipe.tree import PathT, Recipe, dotted
from flava_kit.recipe.validation import SECTIONS, section_class
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
                f"required by the {spec.protocol.__name__} contract",
                dotted(path),
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
    except BuildError:
        raise
    except FlavaKitError as exc:  # already a clear message: it needs only the recipe path (of the parameter it names, if any)
        where = dotted(path + (exc.parameter,) if getattr(exc, "parameter", None) in value else path)
        raise BuildError(f"{where}: {exc}", where) from exc
    except Exception as exc:
        raise BuildError(f"{dotted(path)}: building {label} failed: {type(exc).__name__}: {exc}", dotted(path)) from exc


def build_section(recipe: Recipe, name: str) -> Any:
    """Build a resolved recipe's top-level section (``data`` or ``train``); its default when absent."""
    return _construct(section_class(name), recipe.data.get(name, {}), (name,), f"section '{name}'")


def dry_build(data: dict) -> list[Problem]:
    """Build a resolved recipe's model on the ``meta`` device (shapes, no memory) and its sections
    for real, then let the data section take its settings from the model; return what the
    constructors and that step reject, each with the failing component's recipe path.

    This runs every check a constructor makes, a plug-in's included, before anything real is built,
    so ``flava-kit validate`` and ``build`` agree on what is valid. Sections are never built under
    ``meta``: a data source may open its files (to check its columns, say), and torch code it runs
    there must see real tensors.
    """
    problems: list[Problem] = []

    def attempt(name: str, build_one: Any) -> Any:
        try:
            return build_one()
        except BuildError as exc:
            path = exc.path or name
            problems.append(Problem(path, str(exc).removeprefix(f"{path}: ")))
        except FlavaKitError as exc:
            problems.append(Problem(name, str(exc)))
        return None

    with torch.device("meta"):
        model = attempt("model", lambda: build_node(data["model"]))
    sections = {s: attempt(s, lambda s=s: _construct(section_class(s), data[s], (s,), f"section '{s}'")) for s in SECTIONS if s in data}
    if model is not None and sections.get("data") is not None:
        attempt("data", lambda: sections["data"].follow(model))
    return problems
