"""The recipe format as a JSON Schema (draft 2020-12), over every registered component, for editors."""

from __future__ import annotations

from typing import Any

from flava_kit.errors import PluginError
from flava_kit.registry import KINDS, registry
from flava_kit.schema import SlotSpec, component_schema


def recipe_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the recipe format over every registered component.

    Editors use it for completion and checking. Plug-ins that fail to import are left out (their
    names stay in the description of their kind so the reason can be looked up).
    """
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
