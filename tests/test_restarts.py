"""Restarts under a real torchrun (gloo on CPU): a worker killed with SIGKILL, torchrun's
``--max-restarts`` starting the workers again, and the run resuming by itself; two "nodes"
on one machine train like one node with two processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.test_distributed import checkpoint_weights

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
STEPS = ["train.steps=16", "train.log_every=1", "train.eval=null"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads in every run: the same summation order


def torchrun(out: Path, *extra: str, launch: tuple[str, ...] = ("--standalone", "--nproc_per_node", "2")) -> subprocess.Popen:
    """``torchrun LAUNCH --max-restarts 1 -m flava_kit.cli pretrain TINY ...``, as a user types it."""
    command = [sys.executable, "-m", "torch.distributed.run", *launch, "--max-restarts", "1", "-m", "flava_kit.cli", "pretrain", TINY,
               *STEPS, *extra, "--out", str(out)]  # fmt: skip
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for torchrun; its stderr (the workers' too), after checking it exited 0."""
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc: psutil is not a dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue  # not a process, or one that has just ended
        if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def worker(torchrun_pid: int, rank: int) -> int:
    """The pid of the torchrun worker with ``RANK=rank``."""
    for pid in children(torchrun_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return pid
    raise AssertionError(f"no worker with RANK={rank} under torchrun {torchrun_pid}")


def wait_for(path: Path, process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """Poll ``path`` until ``ready(path)``; fail if torchrun ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and ready(path):
            return
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.02)
    raise AssertionError(f"{path} not ready in {timeout} s")


def assert_same_weights(run: Path, reference: Path) -> None:
    a, b = checkpoint_weights(run), checkpoint_weights(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: one node, two processes, no failure."""
    out = tmp_path_factory.mktemp("whole") / "run"
    finish(torchrun(out, "train.checkpoint_every=4"))
    return out


@pytest.mark.slow
def test_a_killed_rank_restarts_and_resumes_from_the_latest_checkpoint(uninterrupted, tmp_path):
    run = tmp_path / "run"
    process = torchrun(run, "train.checkpoint_every=4")
    wait_for(run / "checkpoints" / "latest", process, lambda path: path.read_text().strip())
    os.kill(worker(process.pid, 1), signal.SIGKILL)  # torchrun stops rank 0 too, then starts both again
    stderr = finish(process)
    resumed = [line for line in stderr.splitlines() if "restart 1 of torchrun: resuming from checkpoints/step-" in line]
    assert len(resumed) == 1, stderr[-3000:]  # said once, by rank 0
    assert int(resumed[0].rsplit("-", 1)[1]) < 16  # from a checkpoint the killed attempt wrote, not the last step
    assert (run / "losses.csv").read_text() == (uninterrupted / "losses.csv").read_text()  # every step once, the same values
    assert_same_weights(run, uninterrupted)


@pytest.mark.slow
def test_a_restart_before_any_checkpoint_starts_from_scratch_in_the_same_directory(uninterrupted, tmp_path):
    run = tmp_path / "run"
    process = torchrun(run, "train.checkpoint_every=16")  # the only checkpoint is the last step's
    wait_for(run / "losses.csv", process, lambda path: len(path.read_text().splitlines()) > 2)  # partial logs, no checkpoint
    os.kill(worker(process.pid, 1), signal.SIGKILL)
    stderr = finish(process)
    assert "resuming" not in stderr, stderr[-3000:]
    assert (run / "losses.csv").read_text() == (uninterrupted / "losses.csv").read_text()  # the killed attempt's rows are gone
    assert_same_weights(run, uninterrupted)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_of_one_process_train_like_one_node_of_two(uninterrupted, tmp_path):
    run, port = tmp_path / "run", free_port()  # one run directory: the nodes share a file system
    nodes = [torchrun(run, "train.checkpoint_every=4",
                      launch=("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--rdzv_backend", "c10d",
                              "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "restarts"))  # fmt: skip
             for rank in (0, 1)]
    for node in nodes:
        finish(node)
    assert_same_weights(run, uninterrupted)
