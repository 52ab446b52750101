"""Exact resume on streamed data, with real processes: a run killed with SIGKILL between checkpoints
and resumed trains on exactly the keys an uninterrupted run trains on (0 and 2 DataLoader
workers); two torchrun ranks together read each sample of an epoch exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flava_kit.train.data_state import read_keys
from tests.shards import make_shards

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
EXE = str(Path(sys.executable).parent / "flava-kit")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    return make_shards(tmp_path_factory.mktemp("shards"), shards=8, per_shard=16)  # 128 pairs: 30 steps of 8 cross an epoch


def stream_recipe(urls: str, workers: int) -> list[str]:
    return ["~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{urls}', shuffle: 16}}", f"data.workers={workers}",
            "train.record_keys=true", "train.steps=30", "train.checkpoint_every=10", "train.log_every=5"]  # fmt: skip


def pretrain_process(out: Path, overrides: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([EXE, "pretrain", TINY, *overrides, "--out", str(out), *extra], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_steps(run: Path, steps: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline, path = time.time() + timeout, run / "samples" / "rank-0.jsonl"
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= steps:
            return
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.005)
    raise AssertionError(f"no {steps} steps in {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_kill_9_then_resume_trains_on_the_same_keys(shards, tmp_path, workers):
    overrides = stream_recipe(shards, workers)
    whole = pretrain_process(tmp_path / "whole", overrides)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-3000:]
    cut = pretrain_process(tmp_path / "cut", overrides)
    wait_for_steps(tmp_path / "cut", 13, cut)  # past the checkpoint at step 10, before the one at 20
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    recorded = read_keys(tmp_path / "cut")
    checkpoint = int((tmp_path / "cut" / "checkpoints" / "latest").read_text().strip()[-8:])
    assert checkpoint < max(recorded), "the kill came too late to fall between checkpoints"
    resumed = pretrain_process(tmp_path / "cut", overrides, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
    expected, got = read_keys(tmp_path / "whole"), read_keys(tmp_path / "cut")
    assert sorted(got) == list(range(1, 31)) and got == expected
    assert len({key for step in range(1, 17) for key in expected[step]}) == 128  # the first 16 steps are one epoch


@pytest.mark.slow
def test_two_ranks_read_each_sample_of_an_epoch_once(tmp_path):
    from tests.test_distributed import torchrun_pretrain

    urls = make_shards(tmp_path / "shards", shards=4, per_shard=8)
    torchrun_pretrain(tmp_path, "~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{urls}'}}",
                      "data.batch_size=4", "train.record_keys=true")  # fmt: skip  # 2 ranks x 4 steps x 4 = 32 pairs
    ranks = [read_keys(tmp_path / "run", rank) for rank in (0, 1)]
    seen = [key for rank in ranks for step in sorted(rank) for key in rank[step]]
    assert len(seen) == 32 and len(set(seen)) == 32
