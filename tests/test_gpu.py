"""On a CUDA GPU: the forward matches the CPU's, and bf16 / fp16 pretraining steps train.

Marked ``gpu``: skipped (and counted as skipped) where there is none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import flava_kit
from flava_kit.train.run import pretrain

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
pytestmark = pytest.mark.gpu


def test_cuda_forward_matches_the_cpu_in_fp32():
    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny").eval()
    inputs = model.example_inputs(batch_size=4)
    with torch.no_grad():
        cpu = model(**inputs)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        gpu = model.cuda()(**{k: v.cuda() for k, v in inputs.items()})
    for name in ("image_embeddings", "text_embeddings", "multimodal_embeddings"):
        assert torch.allclose(getattr(gpu, name).cpu(), getattr(cpu, name), atol=1e-4), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_pretraining_run_trains_on_the_gpu(tmp_path, precision):
    run = pretrain(TINY, ["train.device=cuda", f"train.precision={precision}", "train.steps=6"], run_dir=tmp_path)
    assert next(run.model.parameters()).device.type == "cuda"
    losses = [float(line.split(",")[2]) for line in (tmp_path / "losses.csv").read_text().splitlines()[1:]]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert json.loads((tmp_path / "results.json").read_text())["zero_shot_accuracy"] >= 0.0
