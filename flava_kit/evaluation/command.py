"""What ``flava-kit eval`` runs: its arguments turned into an eval recipe, models and an output folder.

``flava-kit eval [MODEL ...] [RECIPE.yaml] [--recipe R] [--data FOLDER | --manifest M] [a.b=value ...]``:
models are run directories, HF FLAVA directories or model recipes (a column each); the tasks come
from ``--recipe`` (or a positional eval recipe file), else the one-task shorthands ``--data`` (zero-shot
on labelled images) and ``--manifest`` (retrieval), else the eval recipe a single run's own recipe
names (``train.eval``), so ``flava-kit eval RUN`` prints what the run reported at its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from flava_kit.errors import FlavaKitError


def _is_eval_recipe(target: str) -> bool:
    path = Path(target)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        return isinstance(data := yaml.safe_load(path.read_text()), dict) and "tasks" in data
    except yaml.YAMLError:
        return True  # let the recipe loader report where the YAML breaks


def shorthand_recipe(data: str | None, manifest: str | None, task: str, templates: str | None) -> dict | None:
    """The one-task eval recipe of ``--data`` / ``--manifest``, or None without either."""
    if data:
        if task != "zero-shot":
            raise FlavaKitError("--data goes with --task zero-shot; retrieval takes --manifest")
        path = Path(data)
        if path.is_dir():
            node: dict[str, Any] = {"type": "zero_shot_classification", "data": {"type": "labelled_folder", "root": data}}
        else:
            names = path.parent / "classnames.txt"
            if not names.is_file():
                raise FlavaKitError(f"{path}: a labelled manifest needs {names} (one class name per line, line i for label i)")
            node = {"type": "zero_shot_classification", "data": {"type": "manifest", "path": data}, "class_names": str(names)}
        if templates:
            node["templates"] = templates
        return {"recipe_version": 1, "tasks": {"zero_shot": node}}
    if manifest:
        if task != "retrieval":
            raise FlavaKitError("--manifest goes with --task retrieval; zero-shot on labelled images takes --data")
        return {"recipe_version": 1, "tasks": {"retrieval": {"type": "retrieval", "data": {"type": "manifest", "path": manifest}}}}
    return None


def model_names(references: Sequence[str]) -> dict[str, str]:
    """A column name per model: its directory's (or recipe's) name, made unique."""
    names: dict[str, str] = {}
    for reference in references:
        path = Path(reference.rstrip("/"))
        base = (path.name if path.is_dir() else path.stem) or reference
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names[name] = reference
    return names


def run_eval_command(targets: Sequence[str], recipe: str | dict | None = None, data: str | None = None, manifest: str | None = None,
                     task: str = "zero-shot", templates: str | None = None, out: str | None = None) -> dict:  # fmt: skip
    """Evaluate as ``flava-kit eval`` was asked; returns the results dict with ``table`` and ``out``."""
    from flava_kit.evaluation.recipe import load_eval_recipe
    from flava_kit.evaluation.runner import evaluate, run_eval_recipe
    from flava_kit.evaluation.table import results_table

    overrides = [t for t in targets if "=" in t and not Path(t).exists()]
    recipes = [t for t in targets if t not in overrides and _is_eval_recipe(t)]
    models = [t for t in targets if t not in overrides and t not in recipes]
    if recipe:
        recipes.append(recipe)
    inline = shorthand_recipe(data, manifest, task, templates)
    if len(recipes) + (inline is not None) > 1:
        raise FlavaKitError("give one eval recipe (a file, --recipe, --data or --manifest), not several")
    single_run = len(models) == 1 and (Path(models[0]) / "checkpoints").is_dir()
    chosen = recipes[0] if recipes else inline
    if chosen is None:
        if len(models) == 1 and not single_run:
            raise FlavaKitError(f"{models[0]}: no checkpoint to evaluate (expected {Path(models[0]) / 'checkpoints'}), so no eval recipe "
                                "named by a run either: give one (--recipe, a file, --data or --manifest)")  # fmt: skip
        if not single_run:
            raise FlavaKitError("which tasks? give an eval recipe (--recipe eval_shapes, or a file), --data FOLDER or --manifest FILE")
        chosen = run_eval_recipe(models[0])
        if not chosen:
            raise FlavaKitError(f"{models[0]}: its recipe names no eval recipe (train.eval): pass one, e.g. --recipe eval_shapes")
    loaded = load_eval_recipe(chosen, overrides, models=model_names(models) if models else None)
    if out is None:
        out = str(Path(models[0]) / "eval" / loaded.name) if single_run else str(Path("eval") / loaded.name)
    results = evaluate(loaded, out)
    return {**results, "table": results_table(results), "out": Path(out)}


def evaluate_run(run: str | Path, eval_recipe: str | dict | None = None, out: str | Path | None = None) -> dict:
    """``flava-kit eval RUN [--recipe R]``: a run directory evaluated with ``eval_recipe`` (default: the
    one its recipe names), written into ``out`` (default ``RUN/eval/NAME``)."""
    return run_eval_command([str(run)], recipe=eval_recipe, out=str(out) if out else None)
