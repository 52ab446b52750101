"""Reading recipe YAML: safe loading that records the ``file:line`` of every key, and finding recipes."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from flava_kit.errors import Problem, RecipeError
from flava_kit.recipe.tree import SHIPPED_DIR, PathT, Tree, dotted, shipped_recipes


def read_yaml(path: Path) -> Tree:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(Problem("", f"cannot read recipe file: {exc.strerror}", origin=str(path))) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RecipeError(Problem("", "the recipe file is empty", expected="a mapping with 'model'", origin=str(path)))
        tree = Tree(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise RecipeError(_yaml_problem(exc, path)) from None
    finally:
        loader.dispose()
    problems: list[Problem] = []
    _locate(node, (), path, tree.origins, problems)
    if not isinstance(tree.data, dict):
        problems.append(Problem("", f"a recipe must be a mapping, got {type(tree.data).__name__}", origin=f"{path}:1"))
    if problems:
        raise RecipeError(problems)
    return tree


def _yaml_problem(exc: yaml.YAMLError, path: Path) -> Problem:
    """PyYAML's error with both of its places: where the construct opened (the context, e.g. an
    unclosed bracket on line 2) and where parsing failed (often the end of the file)."""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    problem, problem_mark = getattr(exc, "problem", None) or str(exc), getattr(exc, "problem_mark", None)

    def at(mark: Any) -> str:
        return f"{path}:{mark.line + 1}:{mark.column + 1}"

    message = f"invalid YAML: {problem}" + (f" at {at(problem_mark)}" if problem_mark else "")
    if context and context_mark:
        message += f" ({context} at {at(context_mark)})"
    first = context_mark or problem_mark
    return Problem("", message, origin=at(first) if first else str(path))


def _locate(node: yaml.Node, path: PathT, file: Path, origins: dict, problems: list[Problem]) -> None:
    """Record ``file:line`` of every key and item; report duplicate keys (YAML would drop one)."""
    origins.setdefault(path, f"{file}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(dotted(path + (key,)), f"duplicate key (first at line {seen[key]}); YAML would keep only the last", origin=f"{file}:{line}")
                )
            seen[key] = line
            origins[path + (key,)] = f"{file}:{line}"
            _locate(value_node, path + (key,), file, origins, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _locate(item, path + (index,), file, origins, problems)


def find_recipe(ref: str, relative_to: Path | None) -> Path | None:
    """A shipped short name, or a path (relative to the referring file, else to the cwd)."""
    candidates = []
    if "/" not in ref and not ref.endswith((".yaml", ".yml")):
        candidates += [SHIPPED_DIR / f"{ref}.yaml", SHIPPED_DIR / "eval" / f"{ref}.yaml"]
    base = relative_to.parent if relative_to else Path.cwd()
    candidates += [base / ref, Path(ref)]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def not_found(ref: str, path: str, origin: str | None) -> Problem:
    close = difflib.get_close_matches(ref, shipped_recipes(), n=2)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return Problem(
        path, f"cannot find recipe '{ref}'", expected="a shipped recipe's short name or a path to a YAML file",
        suggestion=f"{hint}shipped recipes: {', '.join(shipped_recipes())}", origin=origin,
    )  # fmt: skip


