"""One table for an evaluation: rows task x metric, a column per model (the FLAVA paper's layout),
printed as markdown and written with the full results as ``results.json`` and ``results.csv``."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def results_table(results: dict) -> str:
    """The markdown table of a results dict (see :func:`flava_kit.evaluation.runner.evaluate`):
    one row per task and metric, with its direction (↑ higher is better, ↓ lower), a column per model;
    under it, a line for each task's data with items that could not be read (its metrics are over
    fewer items than the data holds), and one for each task left out (``settings.missing: skip``)
    with the command that downloads its data."""
    models = list(results["results"])
    header = ["task", "data", "metric", *models]
    rows = []
    for task, info in results["tasks"].items():
        data = ", ".join(f"{role} {counts['rows']}" for role, counts in info.get("items", {}).items())
        metrics: list[str] = []
        for model in models:
            metrics += [m for m in results["results"][model].get(task, {}).get("metrics", {}) if m not in metrics]
        for metric in metrics:
            lower = any(metric in results["results"][m].get(task, {}).get("lower_is_better", ()) for m in models)
            values = [results["results"][m].get(task, {}).get("metrics", {}).get(metric) for m in models]
            rows.append([task, data, f"{metric} {'↓' if lower else '↑'}", *("" if v is None else _number(v) for v in values)])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |" for row in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    lines += [f"{task}: {counts['skipped']} of {counts['rows'] + counts['skipped']} {role} items could not be read and were skipped "
              f"(the warnings say why; settings.strict=true stops at the first)"
              for task, info in results["tasks"].items() for role, counts in info.get("items", {}).items() if counts.get("skipped")]  # fmt: skip
    lines += [f"not evaluated: tasks.{task}: {why}" for task, why in results.get("skipped_tasks", {}).items()]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_results(results: dict, out: Path) -> list[Path]:
    """``out/results.json`` (everything), ``out/results.csv`` (one row per model, task and metric) and
    ``out/results.md`` (the table); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "task", "type", "metric", "value", "higher_is_better"])
        for model, by_task in results["results"].items():
            for task, result in by_task.items():
                for metric, value in result["metrics"].items():
                    writer.writerow([model, task, results["tasks"][task]["type"], metric, value, metric not in result["lower_is_better"]])
    (out / "results.md").write_text(results_table(results) + "\n")
    return [out / "results.json", out / "results.csv", out / "results.md"]
