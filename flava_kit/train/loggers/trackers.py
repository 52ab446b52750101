"""What the experiment-tracker loggers (MLflow, W&B) share: the hold-back buffer (their histories are
append-only, so a point goes out only once no resume can log its step again), the record in the run
directory that names the tracker run a resume continues, how the run ended, the extra's check and the error a bad setting raises."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from flava_kit.errors import FlavaKitError


class HeldBack:
    """Points a resumed run would log again, kept until a durable checkpoint covers their step.

    ``--resume`` restarts after the latest checkpoint and logs every later step again, so a tracker
    that cannot delete points would show those steps twice after a crash. ``add`` returns what may
    go out now (a step a checkpoint already covers, such as that checkpoint's validation); the rest
    waits for ``release(step)`` (the trainer's ``checkpointed``). Each point keeps the wall time it
    was logged at. Whatever is still held at the end is what a resume logs again.
    """

    def __init__(self, covered: int = 0):
        self.covered = covered  # the step a resume would start after
        self.held: dict[int, tuple[float, dict[str, float]]] = {}

    def add(self, step: int, metrics: dict[str, float]) -> list[tuple[int, float, dict[str, float]]]:
        """Take ``metrics`` of ``step``; return the (step, time, metrics) that may go out now."""
        now = time.time()
        if step <= self.covered:
            return [(step, now, dict(metrics))]
        held = self.held.setdefault(step, (now, {}))
        held[1].update(metrics)
        return []

    def release(self, step: int) -> list[tuple[int, float, dict[str, float]]]:
        """A checkpoint of ``step`` is durable: return the held points up to it, oldest first."""
        self.covered = max(self.covered, step)
        ready = sorted(s for s in self.held if s <= step)
        return [(s, *self.held.pop(s)) for s in ready]


def read_record(run_dir: Path, name: str) -> dict | None:
    """A tracker's record in ``run_dir`` (which run a resume continues), or None."""
    path = Path(run_dir) / name
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(run_dir: Path, name: str, record: dict) -> None:
    """Write a tracker's record atomically: a crash leaves the old one or the new one."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)


def exit_status() -> str:
    """How the run ends, from the exception propagating through ``close`` (called in the trainer's ``finally``)."""
    error = sys.exc_info()[0]
    if error is None:
        return "FINISHED"
    return "KILLED" if issubclass(error, KeyboardInterrupt) else "FAILED"


def setting_error(message: str, parameter: str | None = None) -> FlavaKitError:
    """An error in a logger's settings; ``parameter`` names the setting, so a recipe's error points at its key and line."""
    error = FlavaKitError(message)
    error.parameter = parameter  # read where the recipe is built (``flava_kit.recipe.building``)
    return error


def require(module: str, extra: str) -> None:
    """Import ``module`` or say which extra installs it."""
    try:
        __import__(module)
    except ImportError as exc:
        raise FlavaKitError(f"the {module} logger needs the {module} package: pip install 'flava_kit[{extra}]' ({exc})") from exc
