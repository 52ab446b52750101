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

import copy
import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import Field

from flava_kit.constraints import Steps
from flava_kit.contracts import Task
from flava_kit.errors import BuildError, FlavaKitError, Problem, RecipeError
from flava_kit.recipe.extends import get, tree_from
from flava_kit.recipe.overrides import apply_override
from flava_kit.recipe.tree import RECIPE_VERSION, PathT, Tree, dotted
from flava_kit.recipe.validation import Validator
from flava_kit.schema import SlotSpec, component_schema

TOP_LEVEL = ("recipe_version", "extends", "models", "tasks", "settings")
TASKS_SLOT = SlotSpec(protocol=Task, kind="task", container="dict", optional=False)


class EvalSettings:
    """How an evaluation runs: ``batch_size`` items per forward pass, ``workers`` DataLoader processes
    decoding images, ``device`` (``auto``: CUDA when available), ``cache`` (the feature cache's
    directory; default ``$FLAVA_KIT_CACHE`` or ``~/.cache/flava_kit/features``), ``strict`` (stop at
    the first item that cannot be read, naming it, instead of warning, skipping and counting it, as
    training's ``data.strict``), ``missing`` (a task whose dataset is an HF Hub id that is not in the
    cache and cannot be downloaded: ``fail``, the default, or ``skip`` it; the table then lists it at
    the end with the command that downloads it, so a suite runs what it has rather than fail after an
    hour). Tasks that split or sample take their own ``seed``."""

    def __init__(self, *, batch_size: Steps = 64, workers: Annotated[int, Field(ge=0, le=64)] = 0,
                 device: Literal["auto", "cpu", "cuda"] = "auto", cache: str | None = None, strict: bool = False,
                 missing: Literal["fail", "skip"] = "fail"):  # fmt: skip
        self.batch_size, self.workers, self.device, self.cache, self.strict = batch_size, workers, device, cache, strict
        self.missing = missing


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
    node), ``settings`` (resolved), ``name`` (the file's stem), the whole resolved ``data``,
    ``notes`` on what resolution dropped and, with ``settings.missing: skip``, the tasks ``skipped``
    for data not in the HF Hub cache (task name -> what is missing and the command that downloads it)."""

    models: dict[str, Any]
    tasks: dict[str, dict]
    settings: dict
    name: str
    data: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def build_settings(self) -> EvalSettings:
        """The settings section as an object."""
        return EvalSettings(**self.settings)


def load_eval_recipe(source: str | Path | Mapping, overrides: Iterable[str] = (), models: Mapping[str, Any] | None = None,
                     require_models: bool = True) -> EvalRecipe:  # fmt: skip
    """Resolve and validate an eval recipe, and build its tasks (opening their sources) as
    ``flava-kit validate`` does (``models`` given here replace the recipe's own; without
    ``require_models`` it may name none, as when validating one meant for models given later); raise
    :class:`~flava_kit.errors.RecipeError` listing every problem, each with its path and origin."""
    tree = tree_from(source)
    if any(str(o).startswith("settings.") for o in overrides) and isinstance(tree.data, dict):
        tree.data.setdefault("settings", {})  # every setting has a default: one can be set on a recipe that sets none
    problems = [p for p in (apply_override(tree, o) for o in overrides) if p is not None]
    resolved, found, notes = _resolve(tree, models, require_models)
    if problems + found:
        raise RecipeError(problems + found)
    name = Path(str(source)).stem if not isinstance(source, Mapping) else "eval"
    skipped = resolved.pop("skipped")
    return EvalRecipe(resolved["models"], resolved["tasks"], resolved["settings"], name, resolved, notes, skipped)


def _resolve(tree: Tree, models: Mapping[str, Any] | None, require_models: bool) -> tuple[dict, list[Problem], list[str]]:
    """The resolved eval recipe of ``tree``, every problem (each valid task built, so a source that
    cannot open is one of them) and the notes on what resolution dropped."""
    validator = Validator(tree)
    data = tree.data
    for key in data:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1)
            validator.problem((key,), "unknown top-level key of an eval recipe", expected=", ".join(TOP_LEVEL),
                              suggestion=f"did you mean '{close[0]}'?" if close else None)  # fmt: skip
    if data.get("recipe_version", RECIPE_VERSION) != RECIPE_VERSION:
        validator.problem(("recipe_version",), f"unsupported recipe_version {data['recipe_version']!r}", expected=str(RECIPE_VERSION))
    tasks, task_models = {}, {}
    if not isinstance(data.get("tasks"), dict) or not data["tasks"]:
        validator.problem(("tasks",), "an eval recipe needs at least one task", expected="tasks: {NAME: {type: TASK, data: {type: SOURCE, ...}}}")
    else:
        task_models = _task_models(validator, data["tasks"])
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
    # Each valid task is built; of one with a problem, each valid source (so every problem shows at once).
    bad = [p.path for p in validator.problems]
    clean = (lambda path: not any(b == path or b.startswith(f"{path}.") for b in bad))  # fmt: skip
    missing: dict[str, str] | None = {} if settings.get("missing") == "skip" else None
    _, failed = _build_each({f"tasks.{name}": node for name, node in tasks.items() if clean(f"tasks.{name}")}, missing=missing)
    skipped = {path.removeprefix("tasks."): why for path, why in (missing or {}).items()}
    tasks = {name: node for name, node in tasks.items() if name not in skipped}
    sources = {f"tasks.{name}.{role}": node for name, task in tasks.items() if not clean(f"tasks.{name}")
               for role, node in _roles(task).items() if clean(f"tasks.{name}.{role}")}  # fmt: skip
    failed += _build_each(sources, "source")[1]
    for name, wanted in task_models.items():  # a task for models of its own: run on those given, else listed as not run
        if name in tasks and resolved_models and not set(wanted) & set(resolved_models):
            skipped[name] = f"it runs on the models {', '.join(wanted)}, and none of them is given (models: {', '.join(resolved_models)})"
            del tasks[name]
        elif name in tasks:
            tasks[name]["models"] = wanted
    resolved = {"recipe_version": RECIPE_VERSION, "models": resolved_models, "tasks": tasks, "settings": settings, "skipped": skipped}
    return resolved, validator.problems + [validator.locate(p) for p in failed], validator.notes


def named_eval_recipe(tree: Tree, path: PathT) -> tuple[Any, list[Problem], list[str]]:
    """The eval recipe a training recipe names at ``path`` (``train.eval``: a shipped name, a path or
    an inline mapping), checked as ``flava-kit validate`` checks one, with no model. Returns what the
    resolved training recipe holds there (a mapping resolved, with the keys a changed ``type`` does
    not take dropped), its problems and notes, each named from the training recipe's root."""
    from flava_kit.recipe.loading import find_recipe

    ref, where = get(tree.data, path), dotted(path)
    if isinstance(ref, str):
        found = find_recipe(ref, None)
        if found is None:
            return ref, [Problem(where, f"cannot find eval recipe '{ref}'", suggestion="a shipped eval recipe (eval_shapes) or a path",
                                 origin=tree.origin(path))], []  # fmt: skip
        try:
            _, problems, notes = _resolve(tree_from(found), None, False)
        except RecipeError as exc:  # its YAML, or what it extends
            problems, notes = exc.problems, []
        inside = f"in eval recipe {ref}: "
        return ref, [replace(p, path=where, message=f"{inside}{p.path}: {p.message}" if p.path else inside + p.message,
                             origin=p.origin or tree.origin(path)) for p in problems], [f"{where}: {inside}{n}" for n in notes]  # fmt: skip
    if "extends" in ref:  # resolved on its own: its keys' lines are not known
        inner = tree_from(ref)
    else:
        def under(mapping: dict) -> dict:
            return {p[len(path) :]: v for p, v in mapping.items() if p[: len(path)] == path}

        inner = Tree(copy.deepcopy(ref), under(tree.origins), under(tree.swaps))
    resolved, problems, notes = _resolve(inner, None, False)
    resolved.pop("skipped")  # the eval recipe is resolved again where it runs
    if not resolved["models"]:
        del resolved["models"]
    return resolved, [replace(p, path=f"{where}.{p.path}" if p.path else where) for p in problems], [f"{where}.{n}" for n in notes]


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
    built, problems = _build_each({f"tasks.{name}": _without_models(node) for name, node in recipe.tasks.items()})
    if problems:
        raise RecipeError(problems)
    return {name: built[f"tasks.{name}"] for name in recipe.tasks}


def _build_each(nodes: dict[str, dict], kind: str = "task", missing: dict[str, str] | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Each node (recipe path -> resolved node of ``kind``) built, and a problem for each that failed;
    given ``missing``, a node whose data is not in the HF Hub cache goes there (path -> why and the
    download command) instead of being a problem."""
    from flava_kit.recipe.building import build_node

    built, problems = {}, []
    for path, node in nodes.items():
        try:
            built[path] = build_node(node, kind=kind, path=path)
        except FlavaKitError as exc:
            cause = _not_cached(exc)
            if missing is not None and cause is not None:
                missing[path] = f"{cause.reference} is not in the HF Hub cache {cause.cache}: {cause.command}"
                continue
            if not isinstance(exc, BuildError):
                problems.append(Problem(path, str(exc)))
                continue
            problems.append(Problem(exc.path or path, str(exc).removeprefix(f"{exc.path}: ")))
    return built, problems


def _without_models(node: dict) -> dict:
    return {k: v for k, v in node.items() if k != "models"}


def _task_models(validator: Validator, nodes: dict) -> dict[str, list[str]]:
    """Each task's ``models`` (the names of the models it runs on, e.g. a GLUE task on the model
    fine-tuned for it; default: every model), taken out of the task's node before it is validated."""
    chosen = {}
    for name, node in nodes.items():
        if isinstance(node, dict) and "models" in node:
            wanted = node.pop("models")
            if not isinstance(wanted, list) or not wanted or not all(isinstance(m, str) for m in wanted):
                validator.problem(("tasks", name, "models"), f"expected a list of model names, got {wanted!r}", expected="models: [NAME, ...]")
            else:
                chosen[name] = wanted
    return chosen


def task_runs_on(node: dict, model: str) -> bool:
    """Whether a resolved task node runs on the model named ``model`` (its ``models``, if it has them)."""
    return "models" not in node or model in node["models"]


def _not_cached(exc: BaseException) -> Any:
    """The :class:`~flava_kit.hub.NotCached` an error was raised from, if any (building wraps it)."""
    from flava_kit.hub import NotCached

    while exc is not None and not isinstance(exc, NotCached):
        exc = exc.__cause__
    return exc


def _roles(task: Any) -> dict[str, dict]:
    """:func:`task_roles` of a task node that may itself be invalid (then none)."""
    try:
        return {role: node for role, node in task_roles(task).items() if isinstance(node, dict) and "type" in node}
    except (FlavaKitError, KeyError, TypeError):
        return {}


def is_eval_recipe(source: str | Path) -> bool:
    """Whether ``source`` (a path or shipped name) is an eval recipe (``tasks``, no ``model``)."""
    try:
        data = tree_from(source).data
    except RecipeError:
        return False
    return "tasks" in data and "model" not in data
