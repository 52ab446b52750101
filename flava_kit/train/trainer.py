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
from flava_kit.train.checkpoint import latest_checkpoint, load_weights, read_state, read_weights, save_checkpoint
from flava_kit.train.config import TrainConfig


def loss_columns(model: torch.nn.Module) -> list[str]:
    """``losses.csv``'s columns: the step, the learning rate, the total loss and each named loss the
    model can report (a pretraining model's objectives by their recipe names)."""
    return ["step", "lr", "loss", *getattr(model, "loss_names", [])]


class _Losses(torch.nn.Module):
    """``(loss, losses)`` from a pretraining model: outputs DDP can trace to find unused parameters."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.model(**batch)
        return out.loss, out.losses


def shard(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """FSDP (``fully_shard``) over every rank: each transformer layer, the codebook, then the rest.

    Scalar parameters (``logit_scale``) cannot be sharded: they stay replicated and are returned,
    for the caller to average their gradients.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from flava_kit.layers import TransformerLayer
    from flava_kit.layers.cross_attention import CrossAttentionLayer

    mesh = init_device_mesh(next(model.parameters()).device.type, (dist.get_world_size(),))
    units = [m for m in model.modules() if isinstance(m, (TransformerLayer, CrossAttentionLayer))]
    codebook = getattr(model, "codebook", None)
    if isinstance(codebook, torch.nn.Module) and any(True for _ in codebook.parameters()):
        units.append(codebook)  # frozen: a unit of its own, apart from the trained weights
    scalars = [p for p in model.parameters() if p.dim() == 0]
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh, ignored_params=set(scalars))
    return scalars


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
        self.columns = loss_columns(model)
        self.replicated: list[torch.nn.Parameter] = []
        if config.fsdp:
            if not self.distributed:
                raise ValueError("train.fsdp shards the model over ranks: run under torchrun")
            self.replicated = shard(model)
            self.model = _Losses(model)
        elif self.distributed:  # some parameters get no gradient in a step (unused poolers; MIM heads in paired batches)
            self.model = torch.nn.parallel.DistributedDataParallel(_Losses(model), find_unused_parameters=True)
        else:
            self.model = _Losses(model)
        # Fused AdamW (~10x faster than the default loop on CPU) does not take FSDP's sharded tensors.
        fused = {"fused": True} if next(model.parameters()).device.type == "cpu" and not config.fsdp else {}
        self.optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, **fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(config.warmup_steps, config.steps))

    def fit(self, resume: bool = False, stop_after: int | None = None) -> int:
        """Train to ``config.steps`` (or stop after ``stop_after`` steps); return the last step done."""
        cfg, start = self.config, 0
        if resume:
            checkpoint = latest_checkpoint(self.run_dir)
            if checkpoint is None:
                raise CheckpointError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
            start = self._restore(checkpoint)
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
        for param in self.replicated:  # averaged like DDP would; a rank without a gradient adds zeros
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad)
            param.grad /= dist.get_world_size()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return totals

    def _open_log(self, resume: bool):
        if self.rank != 0:
            return None
        path = self.run_dir / "losses.csv"
        handle = path.open("a" if resume and path.exists() else "w", newline="")
        writer = csv.DictWriter(handle, fieldnames=self.columns)
        if handle.tell() == 0:
            writer.writeheader()
        return handle, writer

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's whole weights (gathered from every rank's shard under FSDP: a collective)."""
        if not self.config.fsdp:
            return self.module.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _checkpoint(self, step: int) -> None:
        weights = self.full_state_dict()
        if self.config.fsdp:  # gathering the shards is a collective: every rank takes part
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            optimizer_state = get_optimizer_state_dict(self.module, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            optimizer_state = self.optimizer.state_dict()
        if self.rank == 0:
            save_checkpoint(self.run_dir, step, weights, optimizer_state, self.scheduler, self.recipe, self.config.keep_checkpoints)
        if self.distributed:
            dist.barrier()

    def _restore(self, checkpoint: Path) -> int:
        state = read_state(checkpoint)
        if self.config.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

            set_model_state_dict(self.module, read_weights(checkpoint), options=StateDictOptions(full_state_dict=True))
            # strict=False: parameters that never had a gradient (unused poolers) have no AdamW state,
            # in the run that saved this checkpoint as in an uninterrupted one.
            options = StateDictOptions(full_state_dict=True, strict=False)
            set_optimizer_state_dict(self.module, self.optimizer, state["optimizer"], options=options)
        else:
            load_weights(checkpoint, self.module)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return state["step"]


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """A PNG with one curve per loss column of ``losses.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows, columns = list(reader), reader.fieldnames or []
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for column in columns[2:]:  # after step and lr
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
