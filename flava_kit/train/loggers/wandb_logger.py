"""The Weights & Biases logger: one W&B run per run directory (extra ``wandb``), continued by ``--resume``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Literal, get_args

from flava_kit.errors import FlavaKitError
from flava_kit.registry import register
from flava_kit.train.loggers.trackers import HeldBack, exit_status, read_record, require, setting_error, write_record

RECORD = "wandb_run.json"  # in the run directory: the W&B run id a resume continues
STEP = "step"  # the x axis of every chart: the trainer's step, not W&B's own row counter
Mode = Literal["online", "offline", "disabled", "shared"]  # what ``wandb.init(mode=...)`` takes


@register("logger", "wandb")
class WandbLogger:
    """One W&B run per run directory: every metric, the resolved recipe as its config, continued by ``--resume``.

    Metrics are ``train/<name>`` (``train/loss``, ``train/itm/accuracy``, ...), ``system/<name>``
    (samples/s, data wait, compute time, peak memory; the workspace's ``system`` section, beside W&B's
    own hardware charts) and with ``train.select`` ``validation/<metric>``, each row carrying ``step``,
    the x axis of every chart (``define_metric``).

    The run is named after the run directory (or ``name``) in ``project`` (default: ``WANDB_PROJECT``,
    else ``flava_kit``); its ``config`` is the resolved recipe (nested as in the recipe). W&B writes
    its files under ``RUN/wandb/`` (or ``save_dir``). ``mode`` is W&B's: ``online``, ``offline``,
    ``disabled`` or ``shared`` (default: ``WANDB_MODE``, else online; either misspelt is an error when
    the logger is built); an offline run is uploaded later with ``wandb sync``.

    ``--resume`` continues the same W&B run: ``RUN/wandb_run.json`` keeps its id (online, W&B appends
    to it; offline, each process writes its own ``offline-run-*`` directory under that id, and
    ``wandb sync --id ID RUN/wandb/offline-run-*`` uploads them in order into one run).

    **When points appear.** A W&B history cannot drop rows and a resumed run logs again every step after
    its checkpoint, so rows are sent when a checkpoint covering their step is on disk
    (``train.checkpoint_every``; also at the last step and at SIGTERM): the charts run up to one
    checkpoint interval behind the CSV files (and W&B's wall-clock axis shows when rows were sent).
    After ``kill -9`` and ``--resume`` no step appears twice: the crashed process sent nothing after its
    checkpoint, and the resumed one starts there. W&B's service (a separate process, which ends with the
    training process) writes what it received to the ``.wandb`` file every 15 s
    (``x_transaction_log_flush_interval``), so a ``kill -9`` within that time of a checkpoint loses the
    rows that checkpoint sent, which a resume does not send again (measured offline); a shorter interval
    in ``settings`` (passed to ``wandb.Settings``) narrows the window. SIGTERM, errors and normal ends
    lose nothing. A run that ends without a checkpoint of its last steps (an error, ``stop_after``)
    leaves them out, for ``--resume`` to log. Needs ``pip install 'flava_kit[wandb]'``.
    """

    def __init__(self, project: str | None = None, entity: str | None = None, name: str | None = None, mode: Mode | None = None,
                 save_dir: str | None = None, group: str | None = None, tags: list[str] | None = None,
                 settings: dict[str, Any] | None = None):  # fmt: skip
        require("wandb", "wandb")
        import wandb

        variable = os.environ.get("WANDB_MODE")
        if mode is None and variable and variable not in (*get_args(Mode), "dryrun", "run"):  # and W&B's old names; else it fails at step 1
            raise setting_error(f"WANDB_MODE {variable!r} is not a W&B mode (one of {', '.join(get_args(Mode))})")
        self.project, self.entity, self.name, self.mode = project, entity, name, mode
        self.save_dir, self.group, self.tags = save_dir, group, list(tags or [])
        try:  # an unknown or bad setting is an error when the recipe is built, not when training starts
            self.settings = wandb.Settings(**settings) if settings else None
        except ValueError as exc:
            raise FlavaKitError(f"settings: {exc}") from exc
        self.recipe: dict | None = None
        self.run, self.pending = None, HeldBack()

    def record_recipe(self, recipe: dict) -> None:
        """Keep the resolved recipe: ``start`` makes it the run's ``config``."""
        self.recipe = recipe

    def start(self, run_dir: Path, step: int, columns: dict[str, list[str]]) -> None:
        """Open the run: the one ``RUN/wandb_run.json`` names when resuming after ``step`` > 0, else a new one."""
        import wandb

        run_dir = Path(run_dir)
        record = read_record(run_dir, RECORD) if step > 0 else None
        if record is None:
            record = {"id": uuid.uuid4().hex[:12]}
            write_record(run_dir, RECORD, record)
        directory = Path(self.save_dir) if self.save_dir else run_dir
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.project or os.environ.get("WANDB_PROJECT") or "flava_kit", entity=self.entity,
                              name=self.name or run_dir.resolve().name, id=record["id"], resume="allow" if step > 0 else None,
                              config=self.recipe, dir=str(directory), group=self.group, tags=self.tags or None, mode=self.mode,
                              settings=self.settings)  # fmt: skip
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP)
        self.pending = HeldBack(step)

    def log(self, step: int, metrics: dict[str, float], group: str = "train") -> None:
        """Log ``<group>/<name>`` at ``step``: now if a checkpoint covers ``step``, else at the next checkpoint."""
        self._send(self.pending.add(step, {f"{group}/{name}": float(value) for name, value in metrics.items()}))

    def checkpointed(self, step: int) -> None:
        """A checkpoint of ``step`` is on disk: send the rows held up to it."""
        self._send(self.pending.release(step))

    def _send(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        for step, _, values in points:  # one committed row per step (and one per later validation)
            self.run.log({STEP: step, **values})

    def close(self) -> None:
        """Finish the run (exit code 1 on an error); rows no checkpoint covers stay out."""
        if self.run is not None:
            self.run.finish(exit_code=0 if exit_status() == "FINISHED" else 1)
            self.run = None
