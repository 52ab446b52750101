"""The MLflow logger: one MLflow run per run directory (extra ``mlflow``), continued by ``--resume``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from flava_kit.errors import FlavaKitError
from flava_kit.registry import register
from flava_kit.train.loggers.mlflow_stores import check_store
from flava_kit.train.loggers.trackers import HeldBack, exit_status, read_record, require, write_record

RECORD = "mlflow_run.json"  # in the run directory: the store and run a resume continues


def flatten(recipe: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.fusion.hidden_size": 32, ...}``: nested mappings joined with dots, anything else a leaf."""
    if not isinstance(recipe, dict) or (prefix and not recipe):
        return {prefix: recipe}
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@register("logger", "mlflow")
class MlflowLogger:
    """One MLflow run per run directory: every metric, the resolved recipe, continued by ``--resume``.

    Metrics are ``train/<name>`` (``train/loss``, ``train/itm/accuracy``, ...) at each step,
    ``system/<name>`` (samples/s, data wait, compute time, peak memory), which the MLflow UI shows under
    the run's *System metrics*, and with ``train.select`` ``validation/<metric>``.

    The run is named after the run directory (or ``run_name``) in ``experiment`` (default: the
    ``MLFLOW_EXPERIMENT_NAME`` environment variable, else ``flava_kit``; created if missing, its artifacts
    in ``artifact_location`` or MLflow's default), tagged ``flava_kit.run_dir``; its parameters are the
    resolved recipe flattened (``model.fusion.hidden_size``; lists as JSON) and the recipe itself is the
    artifact ``recipe.yaml``. ``tracking_uri`` defaults to MLflow's own choice (``MLFLOW_TRACKING_URI``,
    else ``sqlite:///mlflow.db`` in the working directory); watch with ``mlflow ui --backend-store-uri URI``.
    A store that cannot work is refused when the logger is built (``flava-kit validate``, before step
    1): a scheme MLflow lacks, a file store (``./mlruns``: it cannot hold ``train/itm`` beside
    ``train/itm/accuracy``), a sqlite file that cannot be created, an http(s) server that does not
    answer within 2 s.

    ``--resume`` continues the same MLflow run: ``RUN/mlflow_run.json`` names its store and id. A
    resumed run whose recipe changed (``train.steps`` raised, say) keeps the first values of the
    parameters, since MLflow cannot change them, adds any new ones and logs the recipe it resumed with as
    ``recipe-step-NNNNNNNN.yaml``.

    **When points appear.** MLflow cannot delete points, and a resumed run logs again every step after
    its checkpoint, so points are sent when a checkpoint covering their step is on disk
    (``train.checkpoint_every``; also at the last step and at SIGTERM): the UI runs up to one checkpoint
    interval behind the CSV files. After ``kill -9`` the run (left ``RUNNING``) shows every step up to the
    latest checkpoint; ``--resume`` logs the rest, so each step appears exactly once with the values an
    uninterrupted run logs. A run that ends without a checkpoint of its last steps (an error,
    ``stop_after``) leaves them out, for ``--resume`` to log. ``close`` ends the run ``FINISHED``
    (``FAILED`` on an error). Needs ``pip install 'flava_kit[mlflow]'``.
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None,
                 artifact_location: str | None = None, tags: dict[str, str] | None = None):  # fmt: skip
        require("mlflow", "mlflow")
        if tracking_uri:
            check_store(tracking_uri)
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            check_store(os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI", parameter=None)
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.artifact_location, self.tags = artifact_location, dict(tags or {})
        self.recipe: dict | None = None
        self.client, self.run_id, self.pending = None, None, HeldBack()

    def record_recipe(self, recipe: dict) -> None:
        """Keep the resolved recipe: ``start`` logs it as parameters and the ``recipe.yaml`` artifact."""
        self.recipe = recipe

    def start(self, run_dir: Path, step: int, columns: dict[str, list[str]]) -> None:
        """Open the run: the one ``RUN/mlflow_run.json`` names when resuming after ``step`` > 0, else a new one."""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        run_dir = Path(run_dir)
        record = read_record(run_dir, RECORD) if step > 0 else None
        uri = self.tracking_uri or (record or {}).get("tracking_uri") or mlflow.get_tracking_uri()
        if uri != self.tracking_uri:  # the store a resume's record names, or MLflow's default (a file store where ./mlruns exists)
            check_store(uri, f"train.loggers: the store {run_dir / RECORD} names" if record else "train.loggers: MLflow's store", None)
        self.client, self.pending = MlflowClient(uri), HeldBack(step)
        if record is not None:
            self.run_id = record["run_id"]
            try:
                logged = self.client.get_run(self.run_id).data.params
            except MlflowException as exc:
                raise FlavaKitError(f"train.loggers: MLflow run {self.run_id} (from {run_dir / RECORD}) is not in {uri}: {exc}") from exc
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self._create(run_dir, uri)
            logged = {}
        if self.recipe is not None:
            self._log_recipe(logged, step)

    def _create(self, run_dir: Path, uri: str) -> str:
        """A new run in the experiment (created if missing); its record written before anything is logged to it."""
        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "flava_kit"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name, self.artifact_location)
        tags = {"flava_kit.run_dir": str(run_dir.resolve()), **self.tags}
        run = self.client.create_run(experiment_id, run_name=self.run_name or run_dir.resolve().name, tags=tags)
        write_record(run_dir, RECORD, {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run.info.run_id})
        return run.info.run_id

    def _log_recipe(self, logged: dict[str, str], step: int) -> None:
        """The recipe as parameters (those not logged yet) and as an artifact (again, named by step, if it changed)."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        params = {param_key(k): param_value(v)[:MAX_PARAM_VAL_LENGTH] for k, v in flatten(self.recipe).items()}
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        for first in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[first : first + MAX_PARAMS_TAGS_PER_BATCH])
        if not logged:
            self.client.log_dict(self.run_id, self.recipe, "recipe.yaml")
        elif any(logged[k] != v for k, v in params.items() if k in logged):
            self.client.log_dict(self.run_id, self.recipe, f"recipe-step-{step:08d}.yaml")

    def log(self, step: int, metrics: dict[str, float], group: str = "train") -> None:
        """Log ``<group>/<name>`` at ``step``: now if a checkpoint covers ``step``, else at the next checkpoint."""
        self._send(self.pending.add(step, {f"{group}/{name}": float(value) for name, value in metrics.items()}))

    def checkpointed(self, step: int) -> None:
        """A checkpoint of ``step`` is on disk: send what was held up to it."""
        self._send(self.pending.release(step))

    def _send(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        metrics = [Metric(key, value, int(when * 1000), step) for step, when, values in points for key, value in values.items()]
        for first in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[first : first + MAX_METRICS_PER_BATCH])

    def close(self) -> None:
        """End the run (``FINISHED``, or ``FAILED`` on an error); points no checkpoint covers stay out."""
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, exit_status())
        self.client, self.run_id = None, None


def param_key(key: str) -> str:
    """A recipe path as an MLflow parameter name (characters MLflow refuses become ``_``)."""
    return re.sub(r"[^\w\-. /:]", "_", key)


def param_value(value: Any) -> str:
    """A recipe leaf as MLflow keeps parameters: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
