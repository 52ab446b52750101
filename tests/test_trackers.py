"""Experiment trackers as loggers: MLflow (a real sqlite store, read back with MlflowClient) and W&B
offline (its .wandb log read back), through recipes and the CLI as users run them; each step once
after kill -9 and --resume."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

from mlflow import MlflowClient  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # inside MLflow's sqlite store

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
EXE = str(Path(sys.executable).parent / "flava-kit")
SHORT = ["train.steps=4", "train.log_every=2", "train.checkpoint_every=2", "train.eval=null"]


def mlflow_loggers(store: Path) -> str:
    """``train.loggers`` with the CSV files and MLflow in a sqlite store (and its artifacts) under ``store``."""
    return (f"train.loggers={{csv: {{type: csv}}, mlflow: {{type: mlflow, tracking_uri: 'sqlite:///{store}/mlflow.db', "
            f"artifact_location: '{store}/artifacts'}}}}")  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def mlflow_run(run_dir: Path) -> tuple[MlflowClient, str]:
    """The client of the store the run directory's record names, and the run's id."""
    record = json.loads((run_dir / "mlflow_run.json").read_text())
    return MlflowClient(record["tracking_uri"]), record["run_id"]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def saved_recipe(run_dir: Path) -> dict:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return yaml.safe_load((run_dir / "checkpoints" / latest / "recipe.yaml").read_text())


def test_mlflow_run_holds_the_recipe_and_every_metric_of_every_step(tmp_path, monkeypatch):
    from flava_kit.cli import main

    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)  # the default experiment
    run_dir = tmp_path / "tiny-run"
    assert main(["pretrain", TINY, *SHORT, mlflow_loggers(tmp_path / "store"), "--out", str(run_dir)]) == 0
    client, run_id = mlflow_run(run_dir)
    run = client.get_run(run_id)
    assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED"
    assert run.data.tags["flava_kit.run_dir"] == str(run_dir.resolve())
    assert client.get_experiment(run.info.experiment_id).name == "flava_kit"
    params = run.data.params
    assert params["train.steps"] == "4" and params["model.fusion.hidden_size"] == "32" and params["data.sources.shapes.type"] == "synthetic"
    assert params["train.betas"] == "[0.9, 0.98]"  # lists as JSON
    artifact = client.download_artifacts(run_id, "recipe.yaml", str(tmp_path))
    assert yaml.safe_load(Path(artifact).read_text()) == saved_recipe(run_dir)
    for group, name in (("train", "losses.csv"), ("system", "system.csv")):
        logged = rows(run_dir / name)
        assert logged
        for column in [c for c in logged[0] if c != "step"]:
            expected = [(int(r["step"]), float(r[column])) for r in logged if r[column] != ""]
            got = history(client, run_id, f"{group}/{column}")
            assert [s for s, _ in got] == [s for s, _ in expected], column
            assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-5, abs=1e-9), column
    assert [s for s, _ in history(client, run_id, "system/samples_per_s")] == [1, 2, 4]


def test_mlflow_points_wait_for_the_checkpoint_that_covers_them_and_resume_continues_the_run(tmp_path):
    from flava_kit.train.loggers import MlflowLogger

    uri, run_dir = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "run"
    recipe = {"train": {"steps": 4, "betas": [0.9, 0.98]}, "model": {"type": "flava"}}
    logger = MlflowLogger(tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"))
    logger.record_recipe(recipe)
    logger.start(run_dir, 0, {})
    for step in (1, 2, 3):
        logger.log(step, {"loss": 10.0 - step})
    client, run_id = mlflow_run(run_dir)
    assert history(client, run_id, "train/loss") == []  # nothing before a checkpoint
    logger.checkpointed(2)
    logger.log(2, {"accuracy": 0.5}, group="validation")  # the checkpoint's own evaluation: covered, sent now
    assert history(client, run_id, "train/loss") == [(1, 9.0), (2, 8.0)]
    assert history(client, run_id, "validation/accuracy") == [(2, 0.5)]
    logger.close()  # step 3 has no checkpoint: a resume logs it again
    assert history(client, run_id, "train/loss") == [(1, 9.0), (2, 8.0)]
    assert client.get_run(run_id).info.status == "FINISHED"

    resumed = MlflowLogger()  # no tracking_uri: the record in the run directory names the store
    resumed.record_recipe({**recipe, "train": {"steps": 6, "betas": [0.9, 0.98]}, "data": {"batch_size": 8}})
    resumed.start(run_dir, 2, {})
    assert client.get_run(run_id).info.status == "RUNNING"
    for step in (3, 4):
        resumed.log(step, {"loss": 10.0 - step})
    resumed.checkpointed(4)
    resumed.close()
    assert history(client, run_id, "train/loss") == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)]
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    params = client.get_run(run_id).data.params
    assert params["train.steps"] == "4" and params["data.batch_size"] == "8"  # MLflow keeps the first value; new ones added
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["recipe-step-00000002.yaml", "recipe.yaml"]


LONG = ["train.steps=40", "train.checkpoint_every=15", "train.log_every=5", "train.eval=null"]


def start(run_dir: Path, loggers: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """``flava-kit pretrain`` in its own process, 40 steps with checkpoints at 15 and 30."""
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"}  # the same threads: the same summation order
    env.pop("WANDB_SERVICE", None)  # not the W&B service an in-process test started here: its own, as from a shell
    return subprocess.Popen([EXE, "pretrain", TINY, *LONG, loggers, "--out", str(run_dir), *extra], env=env, cwd=run_dir.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def kill_9_between_checkpoints(run_dir: Path, process: subprocess.Popen) -> None:
    """SIGKILL once ``losses.csv`` has 16 steps: past the checkpoint at 15, before the one at 30."""
    deadline = time.time() + 300
    while not ((run_dir / "losses.csv").exists() and len((run_dir / "losses.csv").read_text().splitlines()) > 16):
        assert process.poll() is None and time.time() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 16 <= len(rows(run_dir / "losses.csv")) < 30


@pytest.mark.slow
def test_mlflow_kill_9_then_resume_continues_the_run_with_every_step_once(tmp_path):
    whole = start(tmp_path / "whole", mlflow_loggers(tmp_path / "whole-store"))
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-2000:]
    run_dir = tmp_path / "crashed"
    kill_9_between_checkpoints(run_dir, start(run_dir, mlflow_loggers(tmp_path / "store")))
    client, run_id = mlflow_run(run_dir)
    assert [s for s, _ in history(client, run_id, "train/loss")] == list(range(1, 16))  # up to the checkpoint, no further
    assert client.get_run(run_id).info.status == "RUNNING"

    resumed = start(run_dir, mlflow_loggers(tmp_path / "store"), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    assert mlflow_run(run_dir)[1] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and len(client.search_runs([run.info.experiment_id])) == 1
    whole_client, whole_id = mlflow_run(tmp_path / "whole")
    for key in ("train/loss", "train/lr", "train/grad_norm", "train/itm/accuracy"):
        assert history(client, run_id, key) == history(whole_client, whole_id, key), key  # every step once, bit for bit
    steps = [s for s, _ in history(client, run_id, "system/samples_per_s")]
    assert len(steps) == len(set(steps)) and steps[-1] == 40


def wandb_records(path: Path):
    """The records of a ``.wandb`` file: W&B's LevelDB-style log (a 7-byte header, then 32 KiB blocks of
    chunks with a 7-byte header each) holding ``wandb.proto.wandb_internal_pb2.Record`` messages."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block = path.read_bytes(), 32768
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # too little room for a chunk header: the block is padded
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:  # padding to the end of the block
            position += left
            continue
        if position + 7 + length > len(data):  # a killed writer's last, partial chunk
            return
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or its last chunk
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_runs(run_dir: Path) -> list[dict]:
    """What each process's offline W&B run wrote under ``RUN/wandb``: id, name, config and history rows, oldest first
    (``offline-run-<start time>-<id>[-<n>]`` directories sort by start)."""
    runs = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"rows": [], "metrics": []}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["id"], run["name"] = record.run.run_id, record.run.display_name
                run["config"] = {item.key: json.loads(item.value_json) for item in record.run.config.update if item.key != "_wandb"}
            elif kind == "history":
                run["rows"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
            elif kind == "metric":
                run["metrics"].append((record.metric.glob_name or record.metric.name, record.metric.step_metric))
        runs.append(run)
    return runs


def offline_environment(home: Path) -> dict[str, str]:
    """W&B offline, its settings and caches under ``home``: nothing leaves the machine or the test's directory."""
    variables = ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", **{variable: str(home) for variable in variables}}


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    for variable, value in offline_environment(tmp_path / "wandb-home").items():
        monkeypatch.setenv(variable, value)


def test_wandb_offline_run_holds_the_recipe_and_every_step(tmp_path, offline_wandb):
    from flava_kit.cli import main

    run_dir = tmp_path / "tiny-run"
    loggers = "train.loggers={csv: {type: csv}, wandb: {type: wandb, project: tests}}"
    assert main(["pretrain", TINY, *SHORT, loggers, "--out", str(run_dir)]) == 0
    (run,) = wandb_runs(run_dir)
    assert run["id"] == json.loads((run_dir / "wandb_run.json").read_text())["id"] and run["name"] == "tiny-run"
    assert run["config"] == saved_recipe(run_dir)
    assert ("*", "step") in run["metrics"]  # every chart against the trainer's step
    trained = [r for r in run["rows"] if "train/loss" in r]
    assert [r["step"] for r in trained] == [1, 2, 3, 4]
    losses = rows(run_dir / "losses.csv")
    assert [r["train/loss"] for r in trained] == pytest.approx([float(r["loss"]) for r in losses], rel=1e-5)
    assert [r["train/itm/accuracy"] for r in trained] == pytest.approx([float(r["itm/accuracy"]) for r in losses], rel=1e-5)
    assert [r["step"] for r in run["rows"] if "system/samples_per_s" in r] == [1, 2, 4]


def test_wandb_resumed_run_continues_the_same_run_with_every_step_once(tmp_path, offline_wandb):
    from flava_kit.train.run import pretrain

    run_dir = tmp_path / "run"
    loggers = "train.loggers={csv: {type: csv}, wandb: {type: wandb, project: tests, settings: {console: 'off'}}}"
    overrides = [loggers, "train.steps=6", "train.checkpoint_every=2", "train.eval=null"]
    pretrain(TINY, overrides, run_dir=run_dir, stop_after=3)  # stops after step 3, whose checkpoint never came
    pretrain(TINY, overrides, run_dir=run_dir, resume=True)
    first, second = wandb_runs(run_dir)
    assert first["id"] == second["id"]
    assert [r["step"] for r in first["rows"]] == [1, 2] and [r["step"] for r in second["rows"]] == [3, 4, 5, 6]
    losses = [float(r["loss"]) for r in rows(run_dir / "losses.csv")]
    assert [r["train/loss"] for r in first["rows"] + second["rows"]] == pytest.approx(losses, rel=1e-5)


def test_a_bad_wandb_setting_is_an_error_at_the_recipe_path(tmp_path, capsys):
    from flava_kit.cli import main

    loggers = "train.loggers={t: {type: wandb, settings: {no_such_setting: 1}}}"
    code = main(["pretrain", TINY, *SHORT, loggers, "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and "train.loggers.t: settings:" in error and "no_such_setting" in error


@pytest.mark.slow
def test_wandb_kill_9_then_resume_logs_no_step_twice(tmp_path):
    run_dir, env = tmp_path / "run", offline_environment(tmp_path / "wandb-home")
    loggers = "train.loggers={csv: {type: csv}, wandb: {type: wandb, project: tests}}"
    kill_9_between_checkpoints(run_dir, start(run_dir, loggers, env=env))
    resumed = start(run_dir, loggers, "--resume", env=env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    crashed, second = wandb_runs(run_dir)
    written = [r["step"] for r in crashed["rows"]]
    # What W&B's service had written when it went down: some of the steps the checkpoint at 15 covers, never more.
    assert written == list(range(1, len(written) + 1)) and len(written) <= 15
    assert [r["step"] for r in second["rows"]] == list(range(16, 41))
    assert second["id"] == json.loads((run_dir / "wandb_run.json").read_text())["id"] == crashed.get("id", second["id"])


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_missing_tracker_package_is_a_clear_error(tracker, tmp_path, monkeypatch, capsys):
    from flava_kit.cli import main

    monkeypatch.setitem(sys.modules, tracker, None)  # ``import tracker`` now raises ImportError
    code = main(["pretrain", TINY, *SHORT, f"train.loggers={{t: {{type: {tracker}}}}}", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and f"pip install 'flava_kit[{tracker}]'" in error and "train.loggers.t" in error


def test_the_trackers_are_imported_only_when_a_logger_is_built():
    code = "import sys, flava_kit.train.loggers; print(sorted(m for m in ('mlflow', 'wandb') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]


def test_any_recipe_value_becomes_an_mlflow_parameter():
    from flava_kit.train.loggers.mlflow_logger import flatten, param_key, param_value

    flat = flatten({"a": {"b": None, "c": [1, "x"], "d": {}}, "e:f g*": "text", "h": math.inf})
    assert {param_key(k): param_value(v) for k, v in flat.items()} == {
        "a.b": "null", "a.c": '[1, "x"]', "a.d": "{}", "e:f g_": "text", "h": "Infinity"}  # fmt: skip
