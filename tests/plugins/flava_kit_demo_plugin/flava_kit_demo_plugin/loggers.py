"""A third-party metric logger: one JSON object per logged row, in RUN/metrics.jsonl."""

import json
from pathlib import Path


class JsonLinesLogger:
    """Appends ``{"step", "group", ...metrics}`` lines; on resume keeps lines up to the restored step."""

    def __init__(self, filename: str = "metrics.jsonl"):
        self.filename = filename
        self.handle = None

    def start(self, run_dir, step, columns):
        path = Path(run_dir) / self.filename
        kept = []
        if step > 0 and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))
        self.handle = path.open("a")

    def log(self, step, metrics, group="train"):
        self.handle.write(json.dumps({"step": step, "group": group, **metrics}) + "\n")
        self.handle.flush()

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None
