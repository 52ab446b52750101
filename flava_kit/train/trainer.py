"""The pretraining loop: one process, or many under ``torchrun`` (DDP)."""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from flava_kit.errors import CheckpointError
from flava_kit.models.flava_pretraining import OBJECTIVES
from flava_kit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from flava_kit.train.config import TrainConfig

COLUMNS = ["step", "lr", "loss", *OBJECTIVES, "classification"]


class _Losses(torch.nn.Module):
    """``(loss, losses)`` from a pretraining model: outputs DDP can trace to find unused parameters."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.model(**batch)
        return out.loss, out.losses


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices; none on norms, biases and other vectors (or scalars)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup: int, total: int):
    """Linear warm-up to the base rate over ``warmup`` steps, then cosine decay to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Trainer:
    """Trains ``model`` on ``batches`` (indexed by step) as ``config`` says, writing into ``run_dir``:
    ``losses.csv`` (every step), ``losses.png`` and ``checkpoints/``."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, batches: Any, run_dir: str | Path, recipe: dict, workers: int = 0):
        self.config, self.batches, self.run_dir, self.recipe, self.workers = config, batches, Path(run_dir), recipe, workers
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.activation_checkpointing:
            for module in model.modules():
                if hasattr(module, "gradient_checkpointing"):
                    module.gradient_checkpointing = True
        self.module = model.train()
        losses = _Losses(model)
        # Some parameters get no gradient in a step (unused poolers; MIM heads in a paired batch).
        self.model = torch.nn.parallel.DistributedDataParallel(losses, find_unused_parameters=True) if self.distributed else losses
        fused = {"fused": True} if next(model.parameters()).device.type == "cpu" else {}
        self.optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, **fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(config.warmup_steps, config.steps))

    def fit(self, resume: bool = False, stop_after: int | None = None) -> int:
        """Train to ``config.steps`` (or stop after ``stop_after`` steps); return the last step done."""
        cfg, start = self.config, 0
        if resume:
            checkpoint = latest_checkpoint(self.run_dir)
            if checkpoint is None:
                raise CheckpointError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
            start = load_checkpoint(checkpoint, self.module, self.optimizer, self.scheduler)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        first, last = start * cfg.accumulation, cfg.steps * cfg.accumulation
        # Its own generator: a DataLoader iterator otherwise draws its seed from the global RNG,
        # which dropout uses, and a resumed run would then see other dropout masks.
        loader = iter(torch.utils.data.DataLoader(self.batches, batch_size=None, sampler=range(first, last),
                                                  num_workers=self.workers, generator=torch.Generator()))  # fmt: skip
        log = self._open_log(resume=resume and start > 0)
        progress = tqdm(total=cfg.steps, initial=start, disable=self.rank != 0, desc="pretrain", dynamic_ncols=True)
        step = start
        for step in range(start + 1, cfg.steps + 1):
            row = self._step(loader)
            row.update(step=step, lr=self.scheduler.get_last_lr()[0])
            self.scheduler.step()
            if log is not None:
                log[1].writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
                log[0].flush()
            if step % cfg.log_every == 0 or step == cfg.steps:
                progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k not in ("step", "lr")}, refresh=False)
            progress.update(1)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self._checkpoint(step)
            if stop_after is not None and step >= stop_after:
                break
        progress.close()
        if log is not None:
            log[0].close()
            if step == cfg.steps:
                plot_losses(self.run_dir / "losses.csv", self.run_dir / "losses.png")
        return step

    def _step(self, loader) -> dict[str, float]:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cfg.autocast else contextlib.nullcontext()
        for _ in range(cfg.accumulation):
            batch = next(loader)
            with autocast:
                loss, losses = self.model(**batch)
            (loss / cfg.accumulation).backward()
            for name, value in {"loss": loss, **losses}.items():
                totals[name] = totals.get(name, 0.0) + value.item() / cfg.accumulation
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return totals

    def _open_log(self, resume: bool):
        if self.rank != 0:
            return None
        path = self.run_dir / "losses.csv"
        handle = path.open("a" if resume and path.exists() else "w", newline="")
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if handle.tell() == 0:
            writer.writeheader()
        return handle, writer

    def _checkpoint(self, step: int) -> None:
        if self.rank == 0:
            save_checkpoint(self.run_dir, step, self.module, self.optimizer, self.scheduler, self.recipe, self.config.keep_checkpoints)
        if self.distributed:
            dist.barrier()


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """A PNG with one curve per loss column of ``losses.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for column in COLUMNS[2:]:
        points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
        if points:
            axis.plot(*zip(*points), label=column, linewidth=1.2 if column == "loss" else 0.8)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
