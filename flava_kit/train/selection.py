"""Model selection and early stopping on a validation split (``train.select``).

Every ``every`` steps the trainer writes a checkpoint and hands it here: it is evaluated with the
selection's eval recipe, the chosen metric is logged (group ``validation``), and when it beats the
best so far (in the task's direction) the checkpoint's weights and recipe are copied to
``checkpoints/best``, which checkpoint pruning never removes. ``checkpoints/best/selection.json``
holds the history, so a resumed run continues the same selection.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from flava_kit.checkpoints.run_dir import BEST, RECIPE, WEIGHTS
from flava_kit.errors import FlavaKitError

HISTORY = "selection.json"


def metric_of(results: dict, metric: str, where: str) -> tuple[float, bool]:
    """(value, higher is better) of ``TASK_METRIC`` ``metric`` in an evaluation's results (one model)."""
    (model, per_task), = results["results"].items()
    for task, result in per_task.items():
        for name, value in result["metrics"].items():
            if f"{task}_{name}" == metric:
                return float(value), name not in result.get("lower_is_better", ())
    known = sorted(results["metrics"][model])
    raise FlavaKitError(f"{where}: the evaluation reports no '{metric}'; it reports {', '.join(known)}")


class Selector:
    """Keeps the best checkpoint of a run by ``config.metric`` (a :class:`~flava_kit.train.config.ModelSelection`);
    ``evaluate(checkpoint) -> results`` runs the selection's eval recipe on one checkpoint."""

    def __init__(self, config: Any, run_dir: Path, evaluate: Callable[[Path], dict]):
        self.config, self.run_dir, self.evaluate = config, Path(run_dir), evaluate
        self.best_dir = self.run_dir / "checkpoints" / BEST
        self.state = {"metric": config.metric, "best_step": None, "best": None, "history": []}

    def due(self, step: int, last_step: int) -> bool:
        """Whether ``step`` is evaluated: every ``every`` steps, and the last."""
        return step % self.config.every == 0 or step == last_step

    def restore(self, step: int) -> None:
        """Continue the selection of a run resumed after ``step`` (evaluations after it are forgotten)."""
        path = self.best_dir / HISTORY
        if path.is_file():
            state = json.loads(path.read_text())
            state["history"] = [row for row in state["history"] if row[0] <= step]
            # The best among what is kept; an evaluation after ``step`` comes again, bit for bit, as training repeats exactly.
            pick = max if state.get("higher", True) else min
            best = pick(state["history"], key=lambda row: row[1]) if state["history"] else [None, None]
            state["best_step"], state["best"] = best
            self.state = state

    def update(self, step: int, checkpoint: Path) -> tuple[dict[str, float], bool]:
        """Evaluate ``checkpoint`` (of ``step``); return (metrics to log, whether to stop early)."""
        value, higher = metric_of(self.evaluate(checkpoint), self.config.metric, "train.select.metric")
        best = self.state["best"]
        self.state["higher"] = higher
        improved = best is None or (value > best if higher else value < best)
        self.state["history"].append([step, value])
        if improved:
            self.state.update(best=value, best_step=step)
            self._keep(checkpoint)
        self._write_state()
        since = [s for s, _ in self.state["history"] if s > self.state["best_step"]]
        stop = self.config.patience is not None and len(since) >= self.config.patience
        return {self.config.metric: value, f"best_{self.config.metric}": self.state["best"]}, stop

    def _keep(self, checkpoint: Path) -> None:
        """Copy a checkpoint's weights and recipe to ``checkpoints/best`` (hard links where the disk
        allows), replacing the previous best atomically."""
        temporary = self.best_dir.with_name(f".{BEST}.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        for name in (WEIGHTS, RECIPE):
            try:
                os.link(checkpoint / name, temporary / name)
            except OSError:
                shutil.copy2(checkpoint / name, temporary / name)
        previous = self.best_dir.with_name(f".{BEST}.old")
        shutil.rmtree(previous, ignore_errors=True)
        if self.best_dir.exists():
            os.replace(self.best_dir, previous)
        os.replace(temporary, self.best_dir)
        shutil.rmtree(previous, ignore_errors=True)

    def _write_state(self) -> None:
        temporary = self.best_dir.parent / f".{HISTORY}.tmp"
        temporary.write_text(json.dumps(self.state, indent=2))
        os.replace(temporary, self.best_dir / HISTORY)
