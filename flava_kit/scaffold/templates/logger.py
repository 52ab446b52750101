"""A metric logger for flava_kit (contract: ``flava_kit.contracts.MetricLogger``): every row of every
group as one tab-separated line, ``step  group  name=value ...``, in ``RUN/metrics.tsv``."""

from __future__ import annotations

from pathlib import Path


class Logger:
    """Appends rows; a resumed run first drops the rows logged after the step it resumes from."""

    def __init__(self, filename: str = "metrics.tsv"):
        self.filename, self.handle = filename, None

    def start(self, run_dir, step: int, columns: dict) -> None:
        """Open the file, keeping only rows up to ``step`` (0: a new run)."""
        path = Path(run_dir) / self.filename
        kept = [row for row in path.read_text().splitlines() if int(row.split("\t")[0]) <= step] if step and path.exists() else []
        path.write_text("".join(row + "\n" for row in kept))
        self.handle = path.open("a")

    def log(self, step: int, metrics: dict, group: str = "train") -> None:
        """One row."""
        self.handle.write("\t".join([str(step), group, *(f"{name}={value:.6g}" for name, value in metrics.items())]) + "\n")
        self.handle.flush()

    def close(self) -> None:
        """Flush and close."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
