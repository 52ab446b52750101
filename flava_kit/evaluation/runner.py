"""Run an eval recipe: every model on every task, features computed once per (weights, dataset,
modality) and shared, one results dict (and table) for all of them."""

from __future__ import annotations

import functools
import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from flava_kit.checkpoints.loading import LoadedModel, load_model
from flava_kit.evaluation.cache import default_cache_dir
from flava_kit.evaluation.encode import PairScorer, dataset_features, encode_texts
from flava_kit.evaluation.recipe import EvalRecipe, build_tasks, task_roles, task_runs_on
from flava_kit.evaluation.tasks.base import TaskInputs
from flava_kit.errors import FlavaKitError


def _node_id(node: dict) -> str:
    return json.dumps(node, sort_keys=True, default=str)


@functools.cache
def git_revision() -> str | None:
    """The flava_kit checkout's commit, when it is one (for the record in results)."""
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None


def evaluate(recipe: EvalRecipe, out: str | Path | None = None, loaded: dict[str, LoadedModel] | None = None) -> dict:
    """Evaluate every model of ``recipe`` on every task; returns the results dict (see
    :func:`flava_kit.evaluation.table.write_results`) and, with ``out``, writes it there with the
    table and the tasks' pictures. ``loaded`` supplies models already in memory by name."""
    from flava_kit.devices import resolve_device
    from flava_kit.recipe import build_node

    settings = recipe.build_settings()
    device = resolve_device(settings.device, "settings.device")
    cache = Path(settings.cache) if settings.cache else default_cache_dir()
    tasks = build_tasks(recipe)
    roles = {name: task_roles(node) for name, node in recipe.tasks.items()}
    sources: dict[str, Any] = {}  # one source per distinct node, shared by the tasks that name it: the one a task built
    for name, by_role in roles.items():
        for role, node in by_role.items():
            if _node_id(node) not in sources:
                held = getattr(tasks[name], role, None)  # the contract: a task keeps each source as the attribute of its role
                sources[_node_id(node)] = held if held is not None else build_node(node, kind="source", path=f"tasks.{name}.{role}")
    results: dict[str, Any] = {"models": {}, "tasks": {}, "results": {}, "metrics": {}, "recipe": recipe.data, "git": git_revision(),
                               "skipped_tasks": dict(recipe.skipped)}  # fmt: skip
    for name, task in tasks.items():
        results["tasks"][name] = {"type": recipe.tasks[name]["type"], "version": getattr(task, "version", None),
                                  "data": roles[name], "items": {}}  # fmt: skip
    for model_name, reference in recipe.models.items():
        model = (loaded or {}).get(model_name) or load_model(reference, device)
        results["models"][model_name] = {"source": model.source, "weights": model.digest(), "kind": model.kind}
        mine = {name: task for name, task in tasks.items() if task_runs_on(recipe.tasks[name], model_name)}
        features, encoded = _features(model, mine, roles, sources, settings, cache)
        results["results"][model_name], results["metrics"][model_name] = {}, {}
        for task_name, task in mine.items():
            by_role = roles[task_name]

            def features_of(role: str, modality: str, by_role: dict = by_role, task_name: str = task_name) -> Any:
                if role not in by_role:
                    raise FlavaKitError(f"tasks.{task_name}: the task asked for its '{role}' data, which the recipe does not set")
                return features[(_node_id(by_role[role]), modality)]

            scorers: dict[str, PairScorer] = {}  # one per role of this task, made when first asked: only re-ranking reads items again

            def score_pairs(role: str, image_rows: Any, text_rows: Any, by_role: dict = by_role, task_name: str = task_name,
                            scorers: dict = scorers) -> Any:  # fmt: skip
                if role not in scorers:
                    source, where = sources[_node_id(by_role[role])], f"tasks.{task_name}.{role}"
                    scorers[role] = PairScorer(model, source, features_of(role, "image"), settings.batch_size, where)
                return scorers[role](image_rows, text_rows)

            inputs = TaskInputs(features_of, {role: sources[_node_id(node)] for role, node in by_role.items()},
                                partial(encode_texts, model), model.kind, getattr(model.model, "answers", None), score_pairs)  # fmt: skip
            try:
                result = task.run(inputs)
            except FlavaKitError as exc:
                hint = _hint(model.kind, recipe.tasks[task_name]["type"])
                raise FlavaKitError(f"tasks.{task_name} on model {model_name}: {exc}{hint}") from exc
            items = {role: {"rows": len(features[(_node_id(node), m)]), "skipped": features[(_node_id(node), m)].skipped}
                     for role, node in by_role.items() for m in sorted(task.needs().get(role, ()))[:1]}  # fmt: skip
            results["tasks"][task_name]["items"] = items
            pictures = _draw(result.pictures, Path(out) / model_name / task_name) if out else []
            results["results"][model_name][task_name] = {
                "metrics": result.metrics, "lower_is_better": sorted(result.lower_is_better), "details": result.details,
                "pictures": [str(p) for p in pictures], "encoded": {f"{role}:{m}": encoded[(_node_id(node), m)]
                                                                    for role, node in by_role.items() for m in task.needs().get(role, ())},
            }  # fmt: skip
            for metric, value in result.metrics.items():
                results["metrics"][model_name][f"{task_name}_{metric}"] = value
    if out:
        from flava_kit.evaluation.table import write_results

        write_results(results, Path(out))
    return results


def _hint(kind: str, task_type: str) -> str:
    """What to run instead, when a fine-tuned model met a task that reads encoder features."""
    if kind == "classifier" and task_type not in ("classification", "zero_shot_classification"):
        return "; a fine-tuned classifier gives only its logits: the classification task reports its predictions"
    if kind == "vqa" and task_type != "vqa":
        return "; a VQA model gives only its answer logits: the vqa task reports its accuracy"
    return ""


def _features(model: LoadedModel, tasks: dict, roles: dict, sources: dict, settings: Any, cache: Path) -> tuple[dict, dict]:
    """Every dataset's features the tasks need, one pass per dataset for all its modalities."""
    wanted: dict[str, set[str]] = {}
    where: dict[str, str] = {}
    for task_name, task in tasks.items():
        for role, modalities in task.needs().items():
            if role not in roles[task_name]:
                raise FlavaKitError(f"tasks.{task_name}.{role}: the task needs this data (its {', '.join(sorted(modalities))} features)")
            node_id = _node_id(roles[task_name][role])
            wanted.setdefault(node_id, set()).update(modalities)
            where.setdefault(node_id, f"tasks.{task_name}.{role}")
    features, encoded = {}, {}
    for node_id, modalities in wanted.items():
        found, counts = dataset_features(model, sources[node_id], json.loads(node_id), modalities, cache, settings.batch_size,
                                         settings.workers, where[node_id], settings.strict)  # fmt: skip
        for modality, value in found.items():
            features[(node_id, modality)], encoded[(node_id, modality)] = value, counts[modality]
    return features, encoded


def _draw(pictures: dict, folder: Path) -> list[Path]:
    """Draw a task's pictures into ``folder``; the paths written."""
    written = []
    for file_name, draw in pictures.items():
        folder.mkdir(parents=True, exist_ok=True)
        draw(folder / file_name)
        if (folder / file_name).is_file():  # a drawing may decline (a confusion matrix of too many classes)
            written.append(folder / file_name)
    return written


def run_eval_recipe(run: str | Path) -> str | dict | None:
    """The eval recipe a run's pretraining recipe names (``train.eval``), or None."""
    import yaml

    from flava_kit.checkpoints.run_dir import RECIPE, latest_checkpoint

    checkpoint = latest_checkpoint(Path(run))
    if checkpoint is None:
        raise FlavaKitError(f"{run}: no checkpoint to evaluate (expected {Path(run) / 'checkpoints'})")
    return ((yaml.safe_load((checkpoint / RECIPE).read_text()) or {}).get("train") or {}).get("eval")
