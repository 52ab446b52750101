"""Restarts under ``torchrun --max-restarts N``: when a rank dies, torchrun stops the others and
starts every worker again with ``TORCHELASTIC_RESTART_COUNT`` raised by one. A restarted worker
resumes from the run's latest checkpoint by itself (no ``--resume`` on a command line nobody
retypes); with no checkpoint yet it starts from step 0 in the same directory, and the loggers
drop what the failed attempt wrote, as a resume drops what came after its checkpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch.distributed as dist

from flava_kit.checkpoints.run_dir import latest_checkpoint


def restart_count() -> int:
    """How many times torchrun has restarted this worker (0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def init_process_group(backend: str) -> None:
    """The default process group from torchrun's environment. In a restarted attempt its keys go
    under a prefix of their own: torchrun's agent keeps its store across restarts, and a rank that
    read a dead attempt's address from it would fail to connect ("Connection refused")."""
    restarts = restart_count()
    if restarts == 0:
        dist.init_process_group(backend)
        return
    from torch.distributed.rendezvous import rendezvous

    store, rank, world_size = next(rendezvous("env://"))
    dist.init_process_group(backend, store=dist.PrefixStore(f"flava_kit/restart_{restarts}", store), rank=rank, world_size=world_size)


def resume_after_restart(run_dir: Path, resume: bool, rank: int) -> bool:
    """Whether the run resumes: as asked, or because this is a torchrun restart and a checkpoint of
    the failed attempt exists (rank 0 says which, on stderr)."""
    restarts = restart_count()
    if resume or restarts == 0:
        return resume
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return False
    if rank == 0:
        print(f"restart {restarts} of torchrun: resuming from {checkpoint.relative_to(run_dir).as_posix()}", file=sys.stderr, flush=True)
    return True
