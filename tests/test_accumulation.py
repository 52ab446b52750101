"""``train.accumulation: K`` is one step on the whole batch: K micro-batches of B give the loss and
every gradient of one batch of K × B (contrastive objectives gradient-cached, masked objectives
weighted by their masked tokens), in one process, over 2 gloo ranks and through the CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "distributed"))
from accumulation_worker import SIGMOID, TINY, make_batch, tiny_model  # noqa: E402

from flava_kit.train.accumulation import ExactAccumulation, split_batch

WORKER = Path(__file__).parent / "distributed" / "accumulation_worker.py"


def one_batch(model, batch):
    """Loss and gradients of one backward over the whole batch."""
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return float(loss.detach()), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def accumulated(model, batch, parts):
    model.zero_grad(set_to_none=True)
    accumulate = ExactAccumulation(model, torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False), lambda loss: loss)
    totals = accumulate.backward(split_batch(batch, parts))
    return totals, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(got, expected, tolerance=1e-5):
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        error = (got[name] - grad).norm()
        assert error <= tolerance * grad.norm() + 1e-9, f"{name}: |diff| {error:.3g} vs |grad| {grad.norm():.3g}"


@pytest.mark.parametrize("kind", ["paired", "image", "text"])
def test_four_micro_batches_of_16_equal_one_batch_of_64_for_flavas_six_objectives(kind):
    model = tiny_model()
    batch = make_batch(model, kind)
    loss, expected = one_batch(model, batch)
    totals, got = accumulated(model, batch, 4)
    assert abs(totals["loss"] - loss) <= 1e-5 * abs(loss)
    assert_same_gradients(got, expected)
    ran = sorted(name for name in model.loss_names if name in totals)
    assert ran == {"paired": ["global_contrastive", "itm", "mmm_image", "mmm_text"], "image": ["mim"], "text": ["mlm"]}[kind]


def test_four_micro_batches_equal_one_batch_for_the_sigmoid_loss():
    model = tiny_model(SIGMOID)
    batch = make_batch(model, "paired")
    batch["input_ids"][:8] = batch["input_ids"][0]  # repeated captions: same_text_positive reaches across micro-batches
    loss, expected = one_batch(model, batch)
    totals, got = accumulated(model, batch, 4)
    assert abs(totals["loss"] - loss) <= 1e-5 * abs(loss)
    assert_same_gradients(got, expected)
    assert "objectives.sigmoid_contrastive.logit_bias" in got  # the objective's own parameters get their gradient once


def test_naive_accumulation_is_not_one_batch():
    """What exactness is for: summing micro-batch contrastive losses scores 15 negatives, not 63."""
    model = tiny_model("{global_contrastive: {type: global_contrastive}}")
    batch = make_batch(model, "paired")
    loss, _ = one_batch(model, batch)
    naive = sum(float(model(**micro).loss.detach()) for micro in split_batch(batch, 4)) / 4
    assert abs(naive - loss) > 0.05 * loss


@pytest.mark.parametrize("objectives", [None, SIGMOID])
def test_two_gloo_ranks_with_two_micro_batches_equal_one_process_with_the_whole_batch(tmp_path, objectives):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), str(tmp_path), "paired",
               *([objectives] if objectives else [])]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = torch.load(tmp_path / "result.pt")
    assert distributed["world"] == 2
    model = tiny_model(objectives)
    _, expected = one_batch(model, make_batch(model, "paired"))
    assert_same_gradients(distributed["grads"], expected)


def losses_csv(run: Path) -> list[dict[str, float]]:
    with open(run / "losses.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


def test_accumulated_run_through_the_cli_is_the_one_batch_run(tmp_path):
    """``flava-kit pretrain`` with 4 × 4 accumulated trains as batches of 16: the same items, losses and weights."""
    from tests.test_distributed import checkpoint_weights

    common = ["train.steps=3", "train.eval=null", "model.fusion.dropout=0.0", "train.record_keys=true", "data.workers=2"]
    runs = {}
    for name, extra in (("one", ["data.batch_size=16"]), ("accumulated", ["data.batch_size=4", "train.accumulation=4"])):
        runs[name] = tmp_path / name
        command = [sys.executable, "-m", "flava_kit.cli", "pretrain", TINY, *common, *extra, "--out", str(runs[name])]
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    from flava_kit.train.data_state import read_keys

    assert read_keys(runs["one"]) == read_keys(runs["accumulated"])
    one, acc = losses_csv(runs["one"]), losses_csv(runs["accumulated"])
    for a, b in zip(one, acc):
        for column in ("loss", "global_contrastive", "itm", "mmm_image", "mmm_text"):
            assert abs(a[column] - b[column]) <= 1e-4 * abs(a[column]), (column, a, b)
    first, second = checkpoint_weights(runs["one"]), checkpoint_weights(runs["accumulated"])
    for name, tensor in first.items():
        assert torch.allclose(second[name], tensor, atol=1e-4), name


def test_fsdp_accumulates_like_ddp(tmp_path):
    """Under FSDP the gradients are averaged after every backward (not summed once): the same step."""
    from tests.test_distributed import torchrun_pretrain

    common = ["data.batch_size=4", "train.accumulation=2", "model.fusion.dropout=0.0", "train.eval=null"]
    torchrun_pretrain(tmp_path / "ddp", *common)
    torchrun_pretrain(tmp_path / "fsdp", *common, "train.fsdp=true")
    ddp, fsdp = losses_csv(tmp_path / "ddp" / "run"), losses_csv(tmp_path / "fsdp" / "run")
    assert len(ddp) == len(fsdp) == 4
    for a, b in zip(ddp, fsdp):
        for column in ("loss", "global_contrastive", "itm", "mmm_image", "mmm_text"):
            assert abs(a[column] - b[column]) <= 1e-4 * abs(a[column]), (column, a, b)


def test_a_plug_in_s_batch_level_objective_is_accumulated_exactly_with_no_code_of_its_own():
    """The demo plug-in's ``batch_margin`` (an installed package's entry point) only splits its forward
    into ``batch_rows`` / ``batch_loss``: 4 x 16 then equals one batch of 64; summed per micro-batch it does not."""
    from flava_kit.registry import registry

    assert registry.describe("loss", "batch_margin").provenance.distribution == "flava_kit_demo_plugin"
    model = tiny_model("{batch_margin: {type: batch_margin, margin: 0.5}}")
    batch = make_batch(model, "paired")
    loss, expected = one_batch(model, batch)
    totals, got = accumulated(model, batch, 4)
    assert abs(totals["loss"] - loss) <= 1e-5 * abs(loss)
    assert_same_gradients(got, expected)
    naive = sum(float(model(**micro).loss.detach()) for micro in split_batch(batch, 4)) / 4
    assert abs(naive - loss) > 1e-3 * loss
