"""The CSV logger: ``losses.csv`` (every step's losses and learning rate) and ``system.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from flava_kit.registry import register

FILES = {"train": "losses.csv", "system": "system.csv", "validation": "validation.csv"}


@register("logger", "csv")
class CsvLogger:
    """One CSV file per metric group in the run directory: ``losses.csv`` for the ``train`` group
    (losses, learning rate, gradient norm, objective metrics), ``system.csv`` for ``system``
    (throughput, data-wait and compute time, memory) and, with ``train.select``, ``validation.csv``
    (the selection metric at each evaluated checkpoint).

    Columns are the names the trainer announces plus any that appear later (the header is then
    rewritten). Every row is flushed as it is written; on resume, rows after the restored step are
    dropped first, so each step appears exactly once after a crash.
    """

    def __init__(self, precision: int = 6):
        self.precision = precision
        self.run_dir: Path | None = None
        self.columns: dict[str, list[str]] = {}
        self.handles: dict[str, object] = {}

    def start(self, run_dir: Path, step: int, columns: dict[str, list[str]]) -> None:
        """Open the files for a run resuming after ``step`` (0: a new run); keep rows up to ``step``."""
        self.run_dir = Path(run_dir)
        for group, name in FILES.items():
            if group not in columns:  # a group the run never logs (validation without train.select)
                continue
            path = self.run_dir / name
            kept: list[dict] = []
            wanted = list(columns.get(group, []))
            if step > 0 and path.exists():
                with path.open(newline="") as handle:
                    reader = csv.DictReader(handle)
                    kept = [row for row in reader if row.get("step", "").isdigit() and int(row["step"]) <= step]
                    wanted += [c for c in reader.fieldnames or [] if c not in wanted]
            self.columns[group] = wanted
            self._rewrite(group, kept)

    def _rewrite(self, group: str, rows: list[dict]) -> None:
        """Write the header and ``rows`` to a temporary file and move it into place (atomic)."""
        path = self.run_dir / FILES[group]
        if group in self.handles:
            self.handles[group].close()
        temporary = path.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns[group])
            writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self.handles[group] = path.open("a", newline="")

    def log(self, step: int, metrics: dict[str, float], group: str = "train") -> None:
        """Append one row: ``step`` and ``metrics`` (formatted to ``precision`` significant digits)."""
        if not metrics:
            return
        row = {"step": step, **{k: f"{v:.{self.precision}g}" if isinstance(v, float) else v for k, v in metrics.items()}}
        new = [k for k in row if k not in self.columns[group]]
        if new:  # a name first seen now: widen the header, keeping what was written
            self.columns[group] += new
            with (self.run_dir / FILES[group]).open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            self._rewrite(group, rows)
        handle = self.handles[group]
        csv.DictWriter(handle, fieldnames=self.columns[group]).writerow(row)
        handle.flush()

    def close(self) -> None:
        """Close the files."""
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()
