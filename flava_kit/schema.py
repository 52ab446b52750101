"""The signature is the schema: parameter models derived from component constructors.

For every component, :func:`component_schema` reads the constructor's (or factory's) signature
and type hints and builds

- a pydantic model of its plain parameters (unknown keys rejected, types checked, defaults
  filled), and
- a :class:`SlotSpec` for each parameter annotated with a contract protocol, which takes a nested
  recipe node (or a list / dict of them) of that protocol's kind.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Union

import pydantic

from flava_kit.contracts import SLOT_KINDS


@dataclass(frozen=True)
class SlotSpec:
    """A parameter that takes component node(s): ``container`` is None, "list" or "dict"."""

    protocol: type
    kind: str
    container: str | None
    optional: bool

    def describe(self) -> str:
        """How the slot reads in messages: ``a ImageEncoder (kind 'encoder') node``."""
        node = f"{self.protocol.__name__} (kind '{self.kind}') node"
        if self.container == "list":
            node = f"list of {node}s"
        elif self.container == "dict":
            node = f"mapping of names to {node}s"
        return node + (" or null" if self.optional else "")


@dataclass(frozen=True)
class ParameterSpec:
    """One constructor parameter."""

    name: str
    annotation: Any
    default: Any
    required: bool
    slot: SlotSpec | None

    @property
    def annotation_text(self) -> str:
        """The annotation as a person writes it."""
        if self.slot is not None:
            return self.slot.describe()
        if isinstance(self.annotation, type) and not typing.get_args(self.annotation):
            return self.annotation.__name__
        return str(self.annotation).replace("typing.", "")


@dataclass(frozen=True)
class ComponentSchema:
    """All parameters of one component plus the pydantic model of its plain (non-slot) ones."""

    parameters: list[ParameterSpec]
    model: type[pydantic.BaseModel]
    accepts_extra: bool  # the constructor takes **kwargs

    @property
    def slots(self) -> dict[str, SlotSpec]:
        """The parameters that take nested component nodes."""
        return {p.name: p.slot for p in self.parameters if p.slot is not None}

    @property
    def names(self) -> list[str]:
        """Every parameter name, in signature order."""
        return [p.name for p in self.parameters]


def _slot_of(annotation: Any) -> SlotSpec | None:
    """Recognise ``P``, ``Optional[P]``, ``list[P]`` and ``dict[str, P]`` for a contract ``P``."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            return None
        annotation = args[0]
        origin = typing.get_origin(annotation)
    container = None
    if origin in (list, typing.List):
        container, annotation = "list", typing.get_args(annotation)[0]
    elif origin in (dict, typing.Dict):
        container, annotation = "dict", typing.get_args(annotation)[1]
    if annotation in SLOT_KINDS:
        return SlotSpec(annotation, SLOT_KINDS[annotation], container, optional)
    return None


@lru_cache(maxsize=None)
def component_schema(target: Callable[..., Any]) -> ComponentSchema:
    """Derive the parameter schema of a component class or factory function."""
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: fall back to unchecked parameters
        hints = {}
    parameters, fields, accepts_extra = [], {}, False
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            accepts_extra = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        annotation = hints.get(param.name, Any)
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        slot = _slot_of(annotation)
        parameters.append(ParameterSpec(param.name, annotation, default, required, slot))
        if slot is None:
            fields[param.name] = (annotation, ... if required else default)
    config = pydantic.ConfigDict(
        extra="allow" if accepts_extra else "forbid", arbitrary_types_allowed=True, protected_namespaces=()
    )
    model = pydantic.create_model(f"{getattr(target, '__name__', 'Component')}Params", __config__=config, **fields)
    return ComponentSchema(parameters, model, accepts_extra)


def recipe_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the recipe format over every registered component.

    Editors use it for completion and checking. Plug-ins that fail to import are left out (their
    names stay in the description of their kind so the reason can be looked up).
    """
    from flava_kit.errors import PluginError
    from flava_kit.registry import KINDS, registry

    defs: dict[str, Any] = {}
    for kind in KINDS:
        members, broken = [], []
        for entry in registry.list(kind):
            try:
                schema = component_schema(entry.load())
            except PluginError:
                broken.append(entry.qualified_name)
                continue
            key = f"{kind}.{entry.qualified_name}"
            plain = schema.model.model_json_schema()
            defs.update(plain.pop("$defs", {}))
            properties: dict[str, Any] = {"type": {"const": entry.qualified_name}}
            for p in schema.parameters:
                properties[p.name] = _slot_json(p.slot) if p.slot else plain["properties"].get(p.name, {})
            defs[key] = {
                "type": "object",
                "description": f"{kind} '{entry.qualified_name}': {entry.summary}",
                "properties": properties,
                "required": ["type", *(p.name for p in schema.parameters if p.required)],
                "additionalProperties": schema.accepts_extra,
            }
            members.append({"$ref": f"#/$defs/{key}"})
        note = f" (not importable, left out: {', '.join(broken)})" if broken else ""
        # An empty oneOf is not valid JSON Schema; {"not": {}} likewise matches nothing.
        defs[f"kind.{kind}"] = {"description": f"a {kind} component{note}", **({"oneOf": members} if members else {"not": {}})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "flava_kit recipe",
        "type": "object",
        "properties": {
            "recipe_version": {"const": 1},
            "extends": {"type": "string", "description": "a shipped recipe's short name or a path"},
            "model": {"$ref": "#/$defs/kind.model"},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def _slot_json(slot: SlotSpec) -> dict[str, Any]:
    node: dict[str, Any] = {"$ref": f"#/$defs/kind.{slot.kind}"}
    if slot.container == "list":
        node = {"type": "array", "items": node}
    elif slot.container == "dict":
        node = {"type": "object", "additionalProperties": node}
    return {"anyOf": [node, {"type": "null"}]} if slot.optional else node
