"""A run directory survives kill -9 and SIGTERM exactly; metrics reach CSV and TensorBoard."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
EXE = str(Path(sys.executable).parent / "flava-kit")
LONG = ["train.steps=60", "train.checkpoint_every=20", "train.log_every=5", "train.eval=null"]


def start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([EXE, "pretrain", TINY, *LONG, *extra, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def wait_for_rows(run: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run / "losses.csv"
        if path.exists() and len(path.read_text().splitlines()) > count:
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.01)
    raise AssertionError(f"no {count} rows in {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    process = start(out)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return out


def last_weights(run: Path) -> dict:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / latest / "model.safetensors")


@pytest.mark.slow
def test_kill_9_between_checkpoints_then_resume_logs_every_step_once(uninterrupted, tmp_path):
    process = start(tmp_path)
    wait_for_rows(tmp_path, 25, process)  # past the checkpoint at step 20, before the one at 40
    process.send_signal(signal.SIGKILL)
    process.wait()
    logged = rows(tmp_path / "losses.csv")
    assert 25 <= len(logged) < 60 and int((tmp_path / "checkpoints" / "latest").read_text().strip()[-8:]) < len(logged)
    resumed = subprocess.run([EXE, "pretrain", TINY, *LONG, "--out", str(tmp_path), "--resume"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})  # the same threads: the same summation order
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert rows(tmp_path / "losses.csv") == rows(uninterrupted / "losses.csv")  # every step once, the same values
    a, b = last_weights(tmp_path), last_weights(uninterrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_and_exits_0(uninterrupted, tmp_path):
    process = start(tmp_path)
    wait_for_rows(tmp_path, 25, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    logged = rows(tmp_path / "losses.csv")
    stopped = int((tmp_path / "checkpoints" / "latest").read_text().strip()[-8:])
    assert stopped == len(logged) < 60  # a checkpoint of the very step it stopped after
    resumed = subprocess.run([EXE, "pretrain", TINY, *LONG, "--out", str(tmp_path), "--resume"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})  # the same threads: the same summation order
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert rows(tmp_path / "losses.csv") == rows(uninterrupted / "losses.csv")


def test_metrics_reach_tensorboard_and_system_csv(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from flava_kit.train.run import pretrain

    loggers = "train.loggers={csv: {type: csv}, tb: {type: tensorboard}}"
    pretrain(TINY, [loggers, "train.steps=4", "train.log_every=2", "train.eval=null"], run_dir=tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/logit_scale", "train/itm", "train/itm/accuracy",
            "system/samples_per_s", "system/data_wait_s", "system/compute_s", "system/peak_memory_mib"} <= tags  # fmt: skip
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("system/samples_per_s")] == [1, 2, 4]  # the first step, then every log_every
    losses = rows(tmp_path / "losses.csv")
    assert [float(r["loss"]) for r in losses] == pytest.approx([e.value for e in events.Scalars("train/loss")], rel=1e-5)
    system = rows(tmp_path / "system.csv")
    assert [r["step"] for r in system] == ["1", "2", "4"] and all(float(r["samples_per_s"]) > 0 for r in system)


def test_asking_for_cuda_without_one_is_a_clear_error(tmp_path, monkeypatch):
    from flava_kit.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["pretrain", TINY, "train.device=cuda", "--out", str(tmp_path)])
    assert code == 2


def test_checkpoints_are_fsynced_before_they_are_published(tmp_path, monkeypatch):
    from flava_kit.train import checkpoint

    events: list[str] = []
    real_fsync, real_replace = checkpoint.os.fsync, checkpoint.os.replace
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(checkpoint.os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1])
    scheduler = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1), lambda s: 1)
    checkpoint.save_checkpoint(tmp_path, 3, {"w": torch.ones(2)}, {}, scheduler, {"recipe_version": 1}, keep=2)
    # three files and the directory, then the rename; the pointer, its rename, then the parent directory
    assert events == ["fsync"] * 4 + ["replace step-00000003", "fsync", "replace latest", "fsync"]


def test_a_plugin_logger_is_used_by_name_from_a_recipe(tmp_path):
    import json

    from flava_kit.train.run import pretrain

    pretrain(TINY, ["train.loggers={lines: {type: jsonl}}", "train.steps=3", "train.log_every=2", "train.eval=null"], run_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(line["step"], line["group"]) for line in lines] == [(1, "train"), (1, "system"), (2, "train"), (2, "system"), (3, "train")]
    assert not (tmp_path / "losses.csv").exists()  # only the loggers the recipe names
