"""The data pipeline's place in a run: where each lane of each rank stands (checkpointed with the
weights, so a resumed run reads exactly what an uninterrupted one would have) and, when asked,
the keys of the items each step trained on (``samples/rank-R.jsonl``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch.distributed as dist

from flava_kit.errors import CheckpointError


class DataState:
    """One rank's lanes: ``lanes[lane]`` is the ``data_position`` of the lane's last batch."""

    def __init__(self, workers: int, rank: int = 0, world_size: int = 1):
        # Lanes per rank: one per DataLoader worker; without workers the main process reads one lane.
        self.workers, self.rank, self.world_size = max(1, workers), rank, world_size
        self.lanes: dict[int, dict] = {}

    def update(self, position: dict) -> None:
        """Note a batch's ``data_position`` as it is trained on."""
        self.lanes[int(position["lane"])] = position

    @property
    def skipped(self) -> int:
        """Items this rank skipped as broken, over the whole run."""
        return sum(int(lane.get("skipped", 0)) for lane in self.lanes.values())

    def gather(self) -> dict:
        """Every rank's lanes, for rank 0 to write into a checkpoint (a collective under torchrun)."""
        ranks = [self.lanes]
        if dist.is_available() and dist.is_initialized():
            ranks = [None] * self.world_size
            dist.all_gather_object(ranks, self.lanes)
        return {"workers": self.workers, "world_size": self.world_size, "ranks": ranks}

    def restore(self, saved: dict | None, checkpoint: Path) -> None:
        """Take this rank's lanes from a checkpoint's data state; the run must read as it did."""
        if not saved:  # a checkpoint from before data positions existed: the lanes start afresh
            return
        if (saved["workers"], saved["world_size"]) != (self.workers, self.world_size):
            raise CheckpointError(f"{checkpoint}: the data position was saved with data.workers={saved['workers']} on "
                                  f"{saved['world_size']} rank(s); resume with the same (now data.workers={self.workers} on "
                                  f"{self.world_size}) to read the data exactly as the run would have")  # fmt: skip
        self.lanes = {int(lane): position for lane, position in saved["ranks"][self.rank].items()}


class KeyRecorder:
    """Appends ``{"step", "keys"}`` per step to ``run_dir/samples/rank-R.jsonl``; on resume, lines
    after the restored step (written before a crash) are dropped first, so each step appears once."""

    def __init__(self, run_dir: Path, rank: int, start: int):
        self.path = Path(run_dir) / "samples" / f"rank-{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= start:
                        kept.append(line + "\n")
                except (json.JSONDecodeError, KeyError, TypeError):
                    break  # a line torn by the crash: it and everything after go
        self.path.write_text("".join(kept))
        self.handle = open(self.path, "a")

    def record(self, step: int, keys: list[str]) -> None:
        self.handle.write(json.dumps({"step": step, "keys": keys}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def read_keys(run_dir: str | Path, rank: int = 0) -> dict[int, list[str]]:
    """A run's recorded keys by step (``train.record_keys``); a step trained with gradient
    accumulation lists the keys of all its micro-batches."""
    steps: dict[int, list[str]] = {}
    for line in (Path(run_dir) / "samples" / f"rank-{rank}.jsonl").read_text().splitlines():
        row: dict[str, Any] = json.loads(line)
        steps.setdefault(row["step"], []).extend(row["keys"])
    return steps
