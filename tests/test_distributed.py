"""Contrastive losses and pretraining under a real torchrun (2 CPU processes, gloo) equal one process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "distributed"))
from contrastive_worker import make_problem  # noqa: E402

WORKER = Path(__file__).parent / "distributed" / "contrastive_worker.py"


@pytest.mark.parametrize("kind", ["global_contrastive", "sigmoid_contrastive"])
def test_two_process_contrastive_loss_and_gradients_equal_the_joined_batch(tmp_path, kind):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), str(tmp_path), kind]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = torch.load(tmp_path / "result.pt")
    assert distributed["world"] == 2

    params, score, images, texts = make_problem(kind)
    loss = score(images, texts)  # one process, the whole batch
    loss.backward()
    grads = [p.grad for p in params]
    assert torch.allclose(distributed["loss"], loss.detach(), atol=1e-6)
    for got, expected in zip(distributed["grads"], grads):
        assert torch.allclose(got, expected, atol=1e-6)
    assert any(g.abs().max() > 1e-3 for g in grads)  # gradients are not trivially zero


PRETRAIN_WORKER = Path(__file__).parent / "distributed" / "pretrain_worker.py"


def torchrun_pretrain(out, *args):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(PRETRAIN_WORKER), str(out), *args]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def checkpoint_weights(run, name=None):
    from safetensors.torch import load_file

    name = name or (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / name / "model.safetensors")


def test_two_process_pretraining_keeps_the_ranks_in_step(tmp_path):
    from safetensors.torch import load_file

    torchrun_pretrain(tmp_path)
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept them equal
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    saved = load_file(tmp_path / "run" / "checkpoints" / latest / "model.safetensors")
    assert latest == "step-00000004" and all(torch.equal(saved[k], rank0[k]) for k in saved)
    assert len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 5  # rank 0 logs each of 4 steps


def test_fsdp_trains_like_ddp_and_resumes(tmp_path):
    torchrun_pretrain(tmp_path / "ddp")
    torchrun_pretrain(tmp_path / "fsdp", "train.fsdp=true")
    # Same data, same averaged (and clipped) gradients: every logged loss agrees up to reduction-order noise.
    ddp_rows, fsdp_rows = (list(csv.DictReader(open(tmp_path / run / "run" / "losses.csv"))) for run in ("ddp", "fsdp"))
    assert [row.keys() for row in ddp_rows] == [row.keys() for row in fsdp_rows] and len(ddp_rows) == 4
    for a, b in zip(ddp_rows, fsdp_rows):
        assert all(abs(float(a[k]) - float(b[k])) <= 1e-4 * max(1.0, abs(float(a[k]))) for k in a if a[k]), (a, b)
    ddp, fsdp = checkpoint_weights(tmp_path / "ddp" / "run"), checkpoint_weights(tmp_path / "fsdp" / "run")
    assert ddp.keys() == fsdp.keys()
    # Weights: where a gradient is ~0, reduction-order noise can flip the sign of AdamW's m/sqrt(v),
    # moving that weight by up to +-lr; every other weight agrees.
    close = torch.cat([((ddp[k] - fsdp[k]).abs() <= 1e-5).flatten() for k in ddp]).float().mean().item()
    assert close > 0.99
    torchrun_pretrain(tmp_path / "cut", "train.fsdp=true", "--stop-after=2")
    torchrun_pretrain(tmp_path / "cut", "train.fsdp=true", "--resume")
    resumed = checkpoint_weights(tmp_path / "cut" / "run")
    assert all(torch.equal(resumed[k], fsdp[k]) for k in fsdp)  # FSDP resume: bit-exact too


def test_model_selection_under_torchrun(tmp_path):
    """train.select with 2 ranks: checkpoints are collectives, so every rank takes part; rank 0 evaluates."""
    select = ("train.select={eval: {tasks: {val: {type: zero_shot_classification, data: {type: synthetic, split: held_out, size: 24, "
              "image_size: 32}}}}, metric: val_accuracy, every: 2}")  # fmt: skip
    torchrun_pretrain(tmp_path, select)
    rows = (tmp_path / "run" / "validation.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["2", "4"]
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").is_file()
