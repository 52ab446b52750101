"""Evaluating models: eval recipes (models x tasks -> one table), tasks (registry kind ``task``),
features streamed from any source and cached on disk, and the metrics the field reports."""

from flava_kit.evaluation.metrics import classification_report, linear_probe, retrieval_recall_at, torch_linear_probe
from flava_kit.evaluation.recipe import EvalRecipe, load_eval_recipe
from flava_kit.evaluation.command import evaluate_run, run_eval_command
from flava_kit.evaluation.runner import evaluate
from flava_kit.evaluation.table import results_table, write_results
from flava_kit.evaluation.tasks.zero_shot_classification import TEMPLATES

__all__ = [
    "TEMPLATES", "EvalRecipe", "classification_report", "evaluate", "evaluate_run", "linear_probe", "load_eval_recipe",
    "results_table", "retrieval_recall_at", "run_eval_command", "torch_linear_probe", "write_results",
]
