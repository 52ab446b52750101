"""Tracker settings that cannot work (an MLflow store MLflow refuses or cannot reach, a W&B mode that is
not one) are a clear error at the logger's recipe path and line, from ``flava-kit validate`` and
before step 1 of ``flava-kit pretrain``, never "a bug in flava_kit" or a hang in MLflow's retries."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

from tests.test_recipes_through_cli import cli, write  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # inside MLflow's sqlite store


@pytest.fixture
def unused_port():
    """A port on 127.0.0.1 that nothing listens on: held bound (never listening) so no one takes it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def logger_recipe(tmp_path, node: str) -> str:
    """A recipe file whose ``train.loggers.t`` (line 4) is ``node``."""
    return write(tmp_path, f"train:\n  loggers:\n    t: {node}\n")


def refused(capsys, recipe: str, *argv: str) -> str:
    """``flava-kit validate`` and ``pretrain`` of ``recipe`` both refuse it with a clear error; the validate output."""
    code, validated = cli(capsys, "validate", recipe)
    assert code != 0, validated
    assert "bug in flava_kit" not in validated
    started = time.monotonic()
    code, trained = cli(capsys, "pretrain", recipe, "train.steps=2", "train.eval=null", *argv)
    assert code == 2 and "bug in flava_kit" not in trained and "pretrain:" not in trained, trained  # no progress bar: before step 1
    assert time.monotonic() - started < 60, "MLflow's retries"
    return validated


@pytest.mark.parametrize("allow", [None, "true"])
@pytest.mark.parametrize("uri", ["file:./mlruns", "./mlruns"])
def test_a_file_store_is_refused_at_the_tracking_uri_with_the_database_store_to_use(uri, allow, tmp_path, capsys, monkeypatch):
    # Refused even where MLFLOW_ALLOW_FILE_STORE opts in: a file store keeps each metric as a file named
    # by its key, and ``train/<objective>`` beside ``train/<objective>/<metric>`` fails at the first log.
    if allow is None:
        monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", allow)
    monkeypatch.chdir(tmp_path)
    recipe = logger_recipe(tmp_path, f"{{type: mlflow, tracking_uri: '{uri}'}}")
    out = refused(capsys, recipe, "--out", str(tmp_path / "run"))
    assert re.search(r"train\.loggers\.t\.tracking_uri: .*file store.*\[.*recipe\.yaml:4\]", out, re.S), out
    assert "sqlite:///" in out and "mlflow migrate-filestore" in out
    assert not (tmp_path / "mlruns").exists()


def test_an_unknown_store_scheme_is_an_error_listing_the_ones_mlflow_has(tmp_path, capsys):
    out = refused(capsys, logger_recipe(tmp_path, "{type: mlflow, tracking_uri: 'nonsense://x'}"), "--out", str(tmp_path / "run"))
    assert re.search(r"train\.loggers\.t\.tracking_uri: 'nonsense://x' .*\[.*recipe\.yaml:4\]", out), out
    assert "sqlite" in out and "http" in out


@pytest.mark.parametrize("where", ["under a file", pytest.param("under /proc", marks=pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc"))])
def test_a_sqlite_file_that_cannot_be_created_is_an_error_at_the_tracking_uri(where, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "mlflow.db" if where == "under a file" else "/proc/nope/mlflow.db"
    out = refused(capsys, logger_recipe(tmp_path, f"{{type: mlflow, tracking_uri: 'sqlite:///{path}'}}"), "--out", str(tmp_path / "run"))
    assert re.search(r"train\.loggers\.t\.tracking_uri: .*cannot create.*\[.*recipe\.yaml:4\]", out, re.S), out


def test_an_http_store_with_no_server_is_an_error_in_seconds_not_minutes_of_retries(unused_port, tmp_path, capsys):
    started = time.monotonic()
    out = refused(capsys, logger_recipe(tmp_path, f"{{type: mlflow, tracking_uri: 'http://127.0.0.1:{unused_port}'}}"), "--out", str(tmp_path / "run"))
    assert time.monotonic() - started < 30
    assert re.search(rf"train\.loggers\.t\.tracking_uri: .*nothing answers at 127\.0\.0\.1:{unused_port}.*\[.*recipe\.yaml:4\]", out, re.S), out
    assert "mlflow server" in out


def test_the_store_MLFLOW_TRACKING_URI_names_is_checked_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nonsense://x")
    out = refused(capsys, logger_recipe(tmp_path, "{type: mlflow}"), "--out", str(tmp_path / "run"))
    assert "train.loggers.t: MLFLOW_TRACKING_URI 'nonsense://x'" in out


def test_a_misspelt_wandb_mode_is_a_schema_problem_listing_the_modes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # were it accepted, nothing would leave the machine
    out = refused(capsys, logger_recipe(tmp_path, "{type: wandb, mode: ofline}"), "--out", str(tmp_path / "run"))
    assert re.search(r"train\.loggers\.t\.mode: .*\[.*recipe\.yaml:4\]", out), out
    assert all(mode in out for mode in ("'online'", "'offline'", "'disabled'"))


def test_a_misspelt_WANDB_MODE_is_an_error_at_the_logger(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "ofline")
    out = refused(capsys, logger_recipe(tmp_path, "{type: wandb}"), "--out", str(tmp_path / "run"))
    assert "train.loggers.t: WANDB_MODE 'ofline'" in out and "offline" in out


def test_mlflow_default_store_an_old_mlruns_makes_is_refused_before_step_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")  # MLflow then defaults to this file store
    code, out = cli(capsys, "pretrain", logger_recipe(tmp_path, "{type: mlflow}"), "train.steps=2", "train.eval=null", "--out", str(tmp_path / "run"))
    assert code == 2 and "pretrain:" not in out and "bug in flava_kit" not in out, out
    assert "train.loggers: MLflow's store 'file://" in out and "is a file store" in out and "sqlite:///" in out
