"""Eval recipes: models x tasks, validated like every recipe (paths named, did-you-mean), then built.

::

    recipe_version: 1
    models:                      # optional when models are given on the command line
      demo: runs/demo            # a run directory, an HF FLAVA directory, or a recipe (path or shipped name)
      hf: {hf: exports/flava, tokenizer: exports/flava}
    tasks:                       # name -> a registered task; its data are registered sources
      shapes: {type: zero_shot_classification, data: {type: labelled_folder, root: shapes/}}
      probe: {type: linear_probe, data: {type: hf_dataset, path: test/, label_column: label}, train: {...}}
    settings: {batch_size: 64, workers: 2, device: auto}
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import Field

from flava_kit.constraints import Steps
from flava_kit.contracts import Task
from flava_kit.errors import Problem, RecipeError
from flava_kit.recipe.extends import tree_from
from flava_kit.recipe.overrides import apply_override
from flava_kit.recipe.tree import RECIPE_VERSION
from flava_kit.recipe.validation import Validator
from flava_kit.schema import SlotSpec, component_schema

TOP_LEVEL = ("recipe_version", "extends", "models", "tasks", "settings")
TASKS_SLOT = SlotSpec(protocol=Task, kind="task", container="dict", optional=False)


class EvalSettings:
    """How an evaluation runs: ``batch_size`` items per forward pass, ``workers`` DataLoader processes
    decoding images, ``device`` (``auto``: CUDA when available), ``cache`` (the feature cache's
    directory; default ``$FLAVA_KIT_CACHE`` or ``~/.cache/flava_kit/features``). Tasks that split
    or sample take their own ``seed``."""

    def __init__(self, *, batch_size: Steps = 64, workers: Annotated[int, Field(ge=0, le=64)] = 0,
                 device: Literal["auto", "cpu", "cuda"] = "auto", cache: str | None = None):  # fmt: skip
        self.batch_size, self.workers, self.device, self.cache = batch_size, workers, device, cache


class ModelReference:
    """A model to evaluate, as a mapping: exactly one of ``run`` (a run directory), ``hf`` (an HF FLAVA
    directory) or ``recipe`` (a recipe path or shipped name, with ``weights``: a safetensors file, and
    ``overrides``); ``tokenizer`` replaces the model's own (a local directory)."""

    def __init__(self, *, run: str | None = None, hf: str | None = None, recipe: str | None = None, weights: str | None = None,
                 tokenizer: str | None = None, overrides: list[str] | None = None):  # fmt: skip
        self.reference = {"run": run, "hf": hf, "recipe": recipe, "weights": weights, "tokenizer": tokenizer, "overrides": overrides}


@dataclass
class EvalRecipe:
    """A validated eval recipe: ``models`` (name -> reference), ``tasks`` (name -> resolved task
    node), ``settings`` (resolved), ``name`` (the file's stem) and the whole resolved ``data``."""

    models: dict[str, Any]
    tasks: dict[str, dict]
    settings: dict
    name: str
    data: dict = field(default_factory=dict)

    def build_settings(self) -> EvalSettings:
        """The settings section as an object."""
        return EvalSettings(**self.settings)


def load_eval_recipe(source: str | Path | Mapping, overrides: Iterable[str] = (), models: Mapping[str, Any] | None = None,
                     require_models: bool = True) -> EvalRecipe:  # fmt: skip
    """Resolve and validate an eval recipe (``models`` given here replace the recipe's own; without
    ``require_models`` it may name none, as when validating one meant for models given later); raise
    :class:`~flava_kit.errors.RecipeError` listing every problem, each with its path and origin."""
    tree = tree_from(source)
    problems = [p for p in (apply_override(tree, o) for o in overrides) if p is not None]
    validator = Validator(tree)
    data = tree.data
    for key in data:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1)
            validator.problem((key,), "unknown top-level key of an eval recipe", expected=", ".join(TOP_LEVEL),
                              suggestion=f"did you mean '{close[0]}'?" if close else None)  # fmt: skip
    if data.get("recipe_version", RECIPE_VERSION) != RECIPE_VERSION:
        validator.problem(("recipe_version",), f"unsupported recipe_version {data['recipe_version']!r}", expected=str(RECIPE_VERSION))
    tasks = {}
    if not isinstance(data.get("tasks"), dict) or not data["tasks"]:
        validator.problem(("tasks",), "an eval recipe needs at least one task", expected="tasks: {NAME: {type: TASK, data: {type: SOURCE, ...}}}")
    else:
        tasks = validator.slot(data["tasks"], ("tasks",), TASKS_SLOT)
    settings = validator.params(data.get("settings") or {}, ("settings",), EvalSettings, "section 'settings'", typed=False)
    chosen = dict(models) if models else data.get("models") or {}
    resolved_models = {}
    if not isinstance(chosen, dict) or (not chosen and require_models):
        validator.problem(("models",), "no model to evaluate", expected="models: {NAME: RUN_DIR}, or models on the command line")
    else:
        for name, reference in chosen.items():
            resolved_models[name] = _model(validator, ("models", name), reference)
    validator.run_checks({"tasks": tasks})
    problems += validator.problems
    if problems:
        raise RecipeError(problems)
    name = Path(str(source)).stem if not isinstance(source, Mapping) else "eval"
    resolved = {"recipe_version": RECIPE_VERSION, "models": resolved_models, "tasks": tasks, "settings": settings}
    return EvalRecipe(resolved_models, tasks, settings, name, resolved)


def _model(validator: Validator, path: tuple, reference: Any) -> Any:
    """A model reference checked: a path that exists (or a shipped recipe), or a valid mapping."""
    from flava_kit.recipe.loading import find_recipe

    from flava_kit.hub import is_hub_id

    if isinstance(reference, str):
        if not Path(reference).exists() and find_recipe(reference, None) is None and not is_hub_id(reference):
            validator.problem(path, f"'{reference}' is neither a run directory, an HF FLAVA directory or hub id, nor a recipe",
                              expected="a path that exists, or a shipped recipe's name")  # fmt: skip
        return reference
    if not isinstance(reference, dict):
        validator.problem(path, f"expected a path or a mapping, got {type(reference).__name__}", expected="RUN_DIR or {run|hf|recipe: ...}")
        return reference
    params = validator.params(reference, path, ModelReference, "model reference", typed=False)
    given = [k for k in ("run", "hf", "recipe") if params.get(k)]
    if len(given) != 1:
        validator.problem(path, f"give exactly one of run, hf or recipe (got {', '.join(given) or 'none'})")
    for key in ("run", "hf", "weights", "tokenizer"):
        if params.get(key) and not Path(params[key]).exists() and not (key in ("hf", "tokenizer") and is_hub_id(params[key])):
            validator.problem(path + (key,), f"{params[key]}: no such file or directory")
    return {k: v for k, v in params.items() if v}


def task_roles(node: dict) -> dict[str, dict]:
    """The source nodes of a resolved task node, by role (the task's source parameters that are set)."""
    from flava_kit.registry import registry

    schema = component_schema(registry.get("task", node["type"]))
    return {name: node[name] for name, spec in schema.slots.items() if spec.kind == "source" and node.get(name) is not None}


def build_tasks(recipe: EvalRecipe) -> dict[str, Any]:
    """Every task built (its sources opened for real), or a RecipeError naming each that failed."""
    from flava_kit.errors import BuildError, FlavaKitError
    from flava_kit.recipe import build_node

    built, problems = {}, []
    for name, node in recipe.tasks.items():
        try:
            built[name] = build_node(node, kind="task", path=f"tasks.{name}")
        except BuildError as exc:
            problems.append(Problem(exc.path or f"tasks.{name}", str(exc).removeprefix(f"{exc.path}: ")))
        except FlavaKitError as exc:
            problems.append(Problem(f"tasks.{name}", str(exc)))
    if problems:
        raise RecipeError(problems)
    return built


def is_eval_recipe(source: str | Path) -> bool:
    """Whether ``source`` (a path or shipped name) is an eval recipe (``tasks``, no ``model``)."""
    try:
        data = tree_from(source).data
    except RecipeError:
        return False
    return "tasks" in data and "model" not in data
