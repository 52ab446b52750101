"""Validation: a resolved recipe checked against the schemas derived from component signatures.

Every problem is collected (not only the first), each with its recipe path and origin, before
anything is built; cross-component checks (``recipe_checks`` hooks) run once the whole recipe is
resolved.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

import pydantic

from flava_kit.errors import Problem, RegistryError
from flava_kit.recipe.tree import RECIPE_VERSION, PathT, Tree, dotted
from flava_kit.registry import registry
from flava_kit.schema import SlotSpec, component_schema

# Top-level sections besides the model: each is a class whose signature is its schema.
SECTIONS = {"data": "flava_kit.train.config:DataConfig", "train": "flava_kit.train.config:TrainConfig"}
TOP_LEVEL_KEYS = ("recipe_version", "extends", "model", *SECTIONS)
# Where a training recipe names eval recipes (a name, a path or an inline mapping), checked with it.
EVAL_RECIPES = (("train", "select", "eval"), ("train", "eval"))
MODEL_SLOT = SlotSpec(protocol=object, kind="model", container=None, optional=False)


class Validator:
    """Walks a recipe against the component schemas, collecting every problem."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        # (hook, resolved node, its path): cross-component checks, run once the whole recipe is resolved
        self.checks: list[tuple[Any, dict, PathT]] = []

    def problem(self, path: PathT, message: str, expected: str | None = None, suggestion: str | None = None) -> None:
        self.problems.append(Problem(dotted(path), message, expected, suggestion, self.tree.origin(path)))

    def recipe(self) -> dict:
        data = self.tree.data
        version = data.get("recipe_version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            self.problem(("recipe_version",), f"unsupported recipe_version {version!r}", expected=str(RECIPE_VERSION))
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
                self.problem((key,), "unknown top-level key", expected=", ".join(TOP_LEVEL_KEYS),
                             suggestion=f"did you mean '{close[0]}'?" if close else None)  # fmt: skip
        resolved: dict = {"recipe_version": RECIPE_VERSION}
        if "model" not in data:
            self.problem(("model",), "missing required section 'model'", expected="a mapping with a 'type' key naming a model")
        else:
            resolved["model"] = self.slot(data["model"], ("model",), MODEL_SLOT)
        for name in SECTIONS:
            if name in data:
                value = data[name]
                if not isinstance(value, dict):
                    self.problem((name,), f"expected a mapping, got {type(value).__name__}", expected=f"the '{name}' section's settings")
                    continue
                resolved[name] = self.params(value, (name,), section_class(name), f"section '{name}'", typed=False)
                self._defer_checks(section_class(name), resolved[name], (name,))
        self.run_checks(resolved)
        return resolved

    def _defer_checks(self, target: Any, node: Any, path: PathT) -> None:
        hook = getattr(target, "recipe_checks", None)
        if callable(hook) and isinstance(node, dict):
            self.checks.append((hook, node, path))

    def locate(self, problem: Problem) -> Problem:
        """``problem`` with the origin (``file:line`` or override) of its recipe path, where known."""
        path = tuple(int(p) if p.isdigit() else p for p in problem.path.split(".")) if problem.path else ()
        return dataclasses.replace(problem, origin=problem.origin or self.tree.blame(path, path))

    def run_checks(self, resolved: dict) -> None:
        """Cross-component checks (see :data:`flava_kit.contracts.RecipeChecks`) over the resolved recipe.

        A check that cannot run because a value it reads is itself invalid stays silent: that
        value has its own problem already.
        """
        for hook, node, path in self.checks:
            try:
                found = list(hook(node, path, resolved))
            except Exception:
                continue
            for where, message, *hint in found:
                where = tuple(where)  # the check read the node around ``where``: an override there may be the cause
                self.problems.append(Problem(dotted(where), message, suggestion=hint[0] if hint else None,
                                             origin=self.tree.blame(where, where[:-1])))  # fmt: skip

    def slot(self, value: Any, path: PathT, spec: SlotSpec) -> Any:
        if value is None:
            if not spec.optional:
                self.problem(path, "is null but a component is required", expected=spec.describe())
            return None
        if spec.container == "list":
            if not isinstance(value, list):
                self.problem(path, f"expected a list, got {type(value).__name__}", expected=spec.describe())
                return value
            return [self.node(item, path + (i,), spec) for i, item in enumerate(value)]
        if spec.container == "dict":
            if not isinstance(value, dict):
                self.problem(path, f"expected a mapping, got {type(value).__name__}", expected=spec.describe())
                return value
            # a null entry removes one inherited through ``extends`` (``sources: {shapes: null}``)
            return {k: self.node(item, path + (k,), spec) for k, item in value.items() if item is not None}
        return self.node(value, path, spec)

    def node(self, value: Any, path: PathT, spec: SlotSpec) -> Any:
        kind = spec.kind
        names = ", ".join(registry.names(kind))
        if not isinstance(value, dict):
            self.problem(path, f"expected a {kind} node, got {type(value).__name__} {value!r}",
                         expected=f"a mapping with 'type: <{kind}>'", suggestion=f"{kind}s: {names}")  # fmt: skip
            return value
        name = value.get("type")
        if not isinstance(name, str):
            what = "missing 'type'" if name is None else f"'type' must be a name, got {name!r}"
            self.problem(path + ("type",), what, expected=f"the name of a registered {kind}", suggestion=f"{kind}s: {names}")
            return value
        try:
            entry = registry.entry(kind, name)
            target = entry.load()
        except RegistryError as exc:
            self.problem(path + ("type",), str(exc))
            return value
        resolved = {"type": entry.qualified_name, **self.params(value, path, target, f"{kind} '{name}'")}
        self._defer_checks(target, resolved, path)
        return resolved

    def params(self, value: dict, path: PathT, target: Any, label: str, typed: bool = True) -> dict:
        """Check a node's parameters against ``target``'s signature; return them with defaults filled.

        ``typed`` nodes name their component in ``type``; sections have no such key.
        """
        schema = component_schema(target)
        plain, resolved_slots = {}, {}
        for key, item in value.items():
            if key == "type" and typed:
                continue
            if key in schema.slots:
                resolved_slots[key] = self.slot(item, path + (key,), schema.slots[key])
            elif key in schema.names or schema.accepts_extra:
                plain[key] = item
            elif key in self.tree.swaps.get(path, ()):
                self.notes.append(f"{dotted(path + (key,))}: dropped, {label} does not take it")
            else:
                close = difflib.get_close_matches(str(key), schema.names, n=2)
                self.problem(path + (key,), f"unknown parameter of {label}",
                             expected=f"one of: {', '.join(schema.names) or 'no parameters'}",
                             suggestion=f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None)  # fmt: skip
        for key, slot_spec in schema.slots.items():
            required = next(p.required for p in schema.parameters if p.name == key)
            if key not in value and required:
                self.problem(path + (key,), f"missing required parameter of {label}", expected=slot_spec.describe())
        try:
            params = schema.model.model_validate(plain).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                loc = path + tuple(error["loc"])
                param = next((p for p in schema.parameters if p.name == error["loc"][0]), None)
                expected = param.annotation_text if param else None
                if error["type"] == "missing":
                    self.problem(loc, f"missing required parameter of {label}", expected=expected)
                else:
                    self.problem(loc, f"{error['msg']} (got {error.get('input')!r})", expected=expected)
            params = plain
        resolved = {}
        for parameter in schema.parameters:  # signature order
            if parameter.name in resolved_slots:
                resolved[parameter.name] = resolved_slots[parameter.name]
            elif parameter.name in params:
                resolved[parameter.name] = params[parameter.name]
            elif parameter.slot is not None and not parameter.required:
                resolved[parameter.name] = parameter.default
        resolved.update({k: v for k, v in params.items() if k not in resolved})  # **kwargs extras
        return resolved


def section_class(name: str) -> Any:
    """The class whose signature is the schema of top-level section ``name`` (imported on use)."""
    module, _, attribute = SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


