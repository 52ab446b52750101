"""The pretraining loop: one process, or many under ``torchrun`` (DDP or FSDP), on a CPU or GPUs."""

from __future__ import annotations

import itertools
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from flava_kit.data.batches import loader_batches
from flava_kit.errors import CheckpointError
from flava_kit.checkpoints.run_dir import latest_checkpoint, load_weights, read_weights
from flava_kit.train.accumulation import ExactAccumulation, split_batch
from flava_kit.train.checkpoint import read_state, save_checkpoint
from flava_kit.train.metrics import SYSTEM_METRICS, MetricsWindow, loss_columns, plot_losses
from flava_kit.train.schedule import warmup_cosine
from flava_kit.train.config import TrainConfig
from flava_kit.train.data_state import DataState, KeyRecorder
from flava_kit.train.device import autocast, grad_scaler, to_device
from flava_kit.train.fsdp import shard
from flava_kit.train.param_groups import parameter_groups


class _Losses(torch.nn.Module):
    """``(loss, losses, metrics)`` from a pretraining model: outputs DDP can trace to find unused parameters."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        out = self.model(**batch)
        return out.loss, out.losses, getattr(out, "metrics", {})


class Trainer:
    """Trains ``model`` on ``batches`` (indexed by step) as ``config`` says, on ``device``, writing
    into ``run_dir``: what the loggers write (``losses.csv`` and ``system.csv``, TensorBoard
    events), ``losses.png`` and ``checkpoints/``.

    SIGTERM (what schedulers send before preemption) finishes the current step, writes a
    checkpoint and returns, so ``--resume`` continues exactly.
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig, batches: Any, run_dir: str | Path, recipe: dict, workers: int = 0,
                 device: torch.device | str = "cpu", selector: Any = None):  # fmt: skip
        self.config, self.batches, self.run_dir, self.recipe, self.workers = config, batches, Path(run_dir), recipe, workers
        self.selector, self.stopped_early, self.last_checkpoint = selector, False, None
        self.device = torch.device(device)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.data_state = DataState(workers, self.rank, dist.get_world_size() if self.distributed else 1)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.activation_checkpointing:  # every encoder and fusion (validation rejects parts that cannot)
            for module in model.modules():
                if hasattr(module, "set_gradient_checkpointing"):
                    module.set_gradient_checkpointing(True)
        self.module = model.to(self.device).train()
        self.columns = {"train": [*loss_columns(model), "grad_norm"], "system": ["step", *SYSTEM_METRICS]}
        if selector is not None:
            self.columns["validation"] = ["step", config.select.metric, f"best_{config.select.metric}"]
        self.replicated: list[torch.nn.Parameter] = []
        if config.fsdp:
            if not self.distributed:
                raise ValueError("train.fsdp shards the model over ranks: run under torchrun")
            self.replicated = shard(model, config.precision)
            self.model = _Losses(model)
        elif self.distributed:  # some parameters get no gradient in a step (unused poolers; MIM heads in paired batches)
            ids = [self.device] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(_Losses(model), device_ids=ids, find_unused_parameters=True)
        else:
            self.model = _Losses(model)
        if config.compile:
            self.model = torch.compile(self.model)
        self.accumulation = None  # one batch: through the DDP wrapper, as usual
        if config.accumulation > 1:
            module = torch.compile(self.module) if config.compile else self.module
            self.accumulation = ExactAccumulation(module, self.device, lambda: autocast(self.device, config.precision), lambda t: self.scaler.scale(t),
                                                  averaged=config.fsdp)  # fmt: skip
        # Fused AdamW (~10x faster than the default loop on CPU) does not take FSDP's sharded tensors.
        fused = {"fused": True} if not config.fsdp else {}
        groups = parameter_groups(model, config.weight_decay, lr=config.lr, lr_multipliers=config.lr_multipliers, layer_decay=config.layer_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, **fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(config.warmup_steps, config.steps))
        self.scaler = grad_scaler(self.device, config.precision)
        self.loggers = dict(config.loggers) if self.rank == 0 else {}
        self.stop_requested = False

    def fit(self, resume: bool = False, stop_after: int | None = None) -> int:
        """Train to ``config.steps`` (or stop after ``stop_after`` steps, or at SIGTERM); return the last step done."""
        cfg, start = self.config, 0
        if resume:
            checkpoint = latest_checkpoint(self.run_dir)
            if checkpoint is None:
                raise CheckpointError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
            start = self._restore(checkpoint)
            if self.selector is not None:
                self.selector.restore(start)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        batches = self.batches.window(start, cfg.steps, self.data_state.lanes)
        # Its own generator: a DataLoader iterator otherwise draws its seed from the global RNG,
        # which dropout uses, and a resumed run would then see other dropout masks.
        loader = loader_batches(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=self.workers, generator=torch.Generator(),
                                                            pin_memory=self.device.type == "cuda" and self.workers > 0))  # fmt: skip
        if start < cfg.steps:  # the first batch before the progress bar: a data error at the start is the only output
            loader = itertools.chain([next(loader)], loader)
        self.keys = KeyRecorder(self.run_dir, self.rank, start) if cfg.record_keys else None
        for logger in self.loggers.values():
            if hasattr(logger, "record_recipe"):  # trackers keep the resolved recipe as the run's parameters
                logger.record_recipe(self.recipe)
            logger.start(self.run_dir, start, self.columns)  # forgets what a crashed run logged after ``start``
        previous = signal.signal(signal.SIGTERM, self._request_stop) if threading.current_thread() is threading.main_thread() else None
        progress = tqdm(total=cfg.steps, initial=start, disable=self.rank != 0, desc="pretrain", dynamic_ncols=True)
        step, window = start, MetricsWindow()
        try:
            for step in range(start + 1, cfg.steps + 1):
                row = self._step(loader, window, step)
                row["lr"] = self.scheduler.get_last_lr()[0]
                self.scheduler.step()
                report = step % cfg.log_every == 0 or step == start + 1
                system = window.report(self.device, self.data_state.skipped) if report else None
                for logger in self.loggers.values():
                    logger.log(step, row)
                    if system is not None:
                        logger.log(step, system, group="system")
                if report:
                    window = MetricsWindow()
                    progress.set_postfix({k: f"{row[k]:.3f}" for k in self.columns["train"][2:-1] if k in row}, refresh=False)
                progress.update(1)
                stop = self._stop_everywhere() or (stop_after is not None and step >= stop_after)
                selecting = self.selector is not None and self.selector.due(step, cfg.steps)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or self.stop_requested or selecting:
                    self._checkpoint(step)
                if selecting and self._select(step):
                    self.stopped_early = stop = step < cfg.steps
                if stop:
                    break
        finally:
            progress.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            for logger in self.loggers.values():
                logger.close()
            if self.keys is not None:
                self.keys.close()
        if self.rank == 0 and (step == cfg.steps or self.stopped_early) and (self.run_dir / "losses.csv").exists():
            plot_losses(self.run_dir / "losses.csv", self.run_dir / "losses.png", self.columns["train"][2:-1])
        return step

    def _select(self, step: int) -> bool:
        """Evaluate the checkpoint just written (rank 0), log the selection metric and keep the best;
        whether every rank should stop early (patience exhausted)."""
        stop = False
        if self.rank == 0:
            metrics, stop = self.selector.update(step, self.last_checkpoint)
            for logger in self.loggers.values():
                logger.log(step, metrics, group="validation")
        if self.distributed:
            flag = torch.tensor([float(stop)], device=self.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True

    def _stop_everywhere(self) -> bool:
        """Whether any rank was asked to stop: all ranks then stop after the same step."""
        if self.distributed:
            flag = torch.tensor([float(self.stop_requested)], device=self.device)
            dist.all_reduce(flag)
            self.stop_requested = bool(flag.item())
        return self.stop_requested

    def skipped_items(self) -> int:
        """Broken items this rank's data pipeline skipped over the run."""
        return self.data_state.skipped

    def _step(self, loader, window: MetricsWindow, step: int) -> dict[str, float]:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        waited = time.perf_counter()
        batch = next(loader)  # the whole step's batch: accumulation splits it
        keys = batch.pop("keys")
        self.data_state.update(batch.pop("data_position"))
        if self.keys is not None:
            self.keys.record(step, keys)
        batch = to_device(batch, self.device)
        started = time.perf_counter()
        window.data_wait += started - waited
        window.samples += next(v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor))
        if self.accumulation is not None:
            totals = self.accumulation.backward(split_batch(batch, cfg.accumulation))
        else:
            with autocast(self.device, cfg.precision):
                loss, losses, metrics = self.model(**batch)
            self.scaler.scale(loss).backward()
            totals = {name: float(value.detach() if torch.is_tensor(value) else value) for name, value in {"loss": loss, **losses, **metrics}.items()}
        window.compute += time.perf_counter() - started
        started = time.perf_counter()
        for param in self.replicated:  # averaged like DDP would; a rank without a gradient adds zeros
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad)
            param.grad /= dist.get_world_size()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients (a no-op without fp16)
        totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip or math.inf))
        scale = getattr(getattr(self.module, "flava", None), "logit_scale", None)
        if scale is not None:
            totals["logit_scale"] = float(scale.detach())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        window.compute += time.perf_counter() - started
        return totals

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's whole weights (gathered from every rank's shard under FSDP: a collective)."""
        if not self.config.fsdp:
            return self.module.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _checkpoint(self, step: int) -> None:
        weights = self.full_state_dict()
        data = self.data_state.gather()  # every rank's lanes (a collective)
        if self.config.fsdp:  # gathering the shards is a collective: every rank takes part
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            optimizer_state = get_optimizer_state_dict(self.module, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            optimizer_state = self.optimizer.state_dict()
        if self.rank == 0:
            self.last_checkpoint = save_checkpoint(self.run_dir, step, weights, optimizer_state, self.scheduler, self.recipe,
                                                   self.config.keep_checkpoints, data)  # fmt: skip
            for logger in self.loggers.values():  # a resume now starts after ``step``: what came before is final
                if hasattr(logger, "checkpointed"):
                    logger.checkpointed(step)
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
        self.data_state.restore(state["data"], checkpoint)
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():  # dropout on the GPU draws from these
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return state["step"]
