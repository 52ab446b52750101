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
        if typing.get_origin(self.annotation) is typing.Annotated:
            base, *extras = typing.get_args(self.annotation)
            return f"{ParameterSpec(self.name, base, None, True, None).annotation_text} {_range_text(extras)}".strip()
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


def _range_text(extras: list[Any]) -> str:
    """``[FieldInfo(gt=0, le=65536)]`` -> ``(> 0, <= 65536)``: the range of a constrained parameter."""
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    bounds = []
    for extra in extras:
        for item in getattr(extra, "metadata", [extra]):
            for name, symbol in symbols.items():
                value = getattr(item, name, None)
                if value is not None:
                    bounds.append(f"{symbol} {value}")
    return f"({', '.join(bounds)})" if bounds else ""


def _slot_of(annotation: Any) -> SlotSpec | None:
    """Recognise ``P``, ``Optional[P]``, ``list[P]`` and ``dict[str, P]`` for a contract ``P``."""
    optional = False
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
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
        hints = typing.get_type_hints(function, include_extras=True)
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
