"""Command-line overrides: ``a.b.c=value`` (the value parsed as YAML) and ``~a.b`` (delete)."""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from flava_kit.errors import Problem
from flava_kit.recipe.extends import get
from flava_kit.recipe.tree import OVERRIDE, PathT, Tree, dotted


def apply_override(tree: Tree, text: str) -> Problem | None:
    """Apply one ``a.b.c=value`` or ``~a.b``; return a problem instead of raising."""
    origin = f"{OVERRIDE} '{text}'"
    delete = text.startswith("~")
    if delete:
        key, value = text[1:], None
    elif "=" in text:
        key, raw = text.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            return Problem(key, f"the value '{raw}' is not valid YAML ({getattr(exc, 'problem', exc)})", origin=origin)
    else:
        return Problem("", "an override must be 'a.b.c=value' or '~a.b'", expected="path=value or ~path", origin=origin)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        return Problem(key, "the path has an empty segment", expected="dotted keys such as model.fusion.num_layers", origin=origin)
    path: PathT = tuple(int(p) if p.isdigit() else p for p in parts)
    node: Any = tree.data
    for depth, part in enumerate(path[:-1]):
        node = _step(node, part)
        if node is None:
            return _missing(tree, path[: depth + 1], origin)
    last = path[-1]
    parent_path = path[:-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            return Problem(dotted(path), f"no item {last} in a list of {len(node)}", origin=origin)
        if delete:
            del node[last]
        else:
            node[last] = value
    elif isinstance(node, dict):
        if delete:
            if last not in node:
                return _missing(tree, path, origin)
            del node[last]
        else:
            if last == "type" and last in node and node[last] != value:
                tree.swaps[parent_path] = tree.swaps.get(parent_path, set()) | (set(node) - {"type"})
            node[last] = value
            tree.swaps.get(parent_path, set()).discard(last)
    else:
        return Problem(dotted(parent_path), f"is a {type(node).__name__}, so '{last}' cannot be set inside it", origin=origin)
    for stale in [p for p in tree.origins if p[: len(path)] == path]:  # what was written inside the value it replaces
        del tree.origins[stale]
    tree.origins[path] = origin
    return None


def _step(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
        return node[part]
    return None


def _missing(tree: Tree, path: PathT, origin: str) -> Problem:
    parent = get(tree.data, path[:-1]) if path[:-1] else tree.data
    keys = [str(k) for k in parent] if isinstance(parent, dict) else []
    close = difflib.get_close_matches(str(path[-1]), keys, n=2)
    hint = f"did you mean {' or '.join(repr(dotted((*path[:-1], c))) for c in close)}?" if close else None
    where = dotted(path[:-1]) or "the recipe"
    return Problem(dotted(path), f"does not exist (keys of {where}: {', '.join(keys) or 'none'})", suggestion=hint, origin=origin)


