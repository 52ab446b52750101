"""What a training recipe trains on and is evaluated with, and where each came from.

``flava-kit validate`` and the start of ``flava-kit pretrain`` print it, so a recipe that
``extends`` another shows the sources and eval recipes it inherited before anything trains.
"""

from __future__ import annotations

from typing import Any

from flava_kit.errors import RecipeError
from flava_kit.recipe.extends import get, tree_from
from flava_kit.recipe.tree import Recipe, Tree, dotted
from flava_kit.recipe.validation import EVAL_RECIPES


def training_summary(recipe: Recipe) -> list[str]:
    """Lines naming each source that trains (type, weight and share of the batches, origin) and each
    eval recipe ``train.select``/``train.eval`` use (its tasks, origin); none for a model-only recipe."""
    data, where = recipe.data, Tree(recipe.data, recipe.origins)
    lines = []
    sources = (data.get("data") or {}).get("sources") or {}
    if sources:
        total = sum(node.get("weight", 1.0) for node in sources.values()) or 1.0
        lines.append("trains on (data.sources; each batch comes from one, drawn by weight):")
        for name, node in sources.items():
            weight = node.get("weight", 1.0)
            lines.append(f"  {name}: {node['type']}, weight {weight:g} ({100 * weight / total:.0f}%)  "
                         f"[{_origin(where, ('data', 'sources', name))}]")  # fmt: skip
    if "train" in data:
        lines.append("evaluates with:")
        for path in EVAL_RECIPES:
            value = get(data, path)
            if value is None:
                lines.append(f"  {dotted(path)}: none")
                continue
            tasks, named = (value.get("tasks"), "inline") if isinstance(value, dict) else (_tasks_of(value), value)
            listed = ", ".join(f"{name} ({_task(node)})" for name, node in (tasks or {}).items())
            lines.append(f"  {dotted(path)}: {named}" + (f", tasks {listed}" if listed else "") + f"  [{where.origin(path)}]")
    return lines


def _origin(tree: Tree, path: tuple) -> str | None:
    """Where the node at ``path`` was defined (its ``type``), and where it was changed if elsewhere."""
    named, defined = tree.origin(path), tree.origin(path + ("type",))
    file = (lambda origin: (origin or "").rsplit(":", 1)[0])
    return defined if file(named) == file(defined) else f"{defined}, changed at {named}"


def _tasks_of(ref: str) -> dict | None:
    """The tasks of the eval recipe file ``ref`` (already validated), or None if it cannot be read."""
    try:
        tasks = tree_from(ref).data.get("tasks")
    except RecipeError:
        return None
    return tasks if isinstance(tasks, dict) else None


def _task(node: Any) -> str:
    """``vqa on shapes_task``: a task's type and the types of its sources."""
    if not isinstance(node, dict):
        return "?"
    sources = [v["type"] for v in node.values() if isinstance(v, dict) and "type" in v]
    return f"{node.get('type')} on {' + '.join(sources)}" if sources else str(node.get("type"))
