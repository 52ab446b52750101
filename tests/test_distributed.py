"""The global contrastive loss under a real torchrun (2 CPU processes, gloo) equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "distributed"))
from contrastive_worker import loss_of, make_problem  # noqa: E402

WORKER = Path(__file__).parent / "distributed" / "contrastive_worker.py"


def test_two_process_contrastive_loss_and_gradients_equal_the_joined_batch(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = torch.load(tmp_path / "result.pt")
    assert distributed["world"] == 2

    image_proj, text_proj, logit_scale, images, texts = make_problem()
    loss = loss_of(image_proj, text_proj, logit_scale, images, texts)  # one process, the whole batch
    loss.backward()
    grads = [p.grad for p in (*image_proj.parameters(), *text_proj.parameters(), logit_scale)]
    assert torch.allclose(distributed["loss"], loss.detach(), atol=1e-6)
    for got, expected in zip(distributed["grads"], grads):
        assert torch.allclose(got, expected, atol=1e-6)
    assert any(g.abs().max() > 1e-3 for g in grads)  # gradients are not trivially zero


PRETRAIN_WORKER = Path(__file__).parent / "distributed" / "pretrain_worker.py"


def test_two_process_pretraining_keeps_the_ranks_in_step(tmp_path):
    from safetensors.torch import load_file

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(PRETRAIN_WORKER), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept them equal
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    saved = load_file(tmp_path / "run" / "checkpoints" / latest / "model.safetensors")
    assert latest == "step-00000004" and all(torch.equal(saved[k], rank0[k]) for k in saved)
    assert len((tmp_path / "run" / "losses.csv").read_text().splitlines()) == 5  # rank 0 logs each of 4 steps
