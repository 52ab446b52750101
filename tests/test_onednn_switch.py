"""The private oneDNN fused-linear path: a switch turns it off, a build without it and a call it
rejects fall back to plain PyTorch, with the same results."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
import torch

import flava_kit
from flava_kit.layers import transformer


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny").eval()
    return model, model.example_inputs()


def forward(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).multimodal_embeddings


@pytest.fixture(autouse=True)
def restore():
    yield
    transformer.set_onednn_linear(True)


def counting_op(monkeypatch):
    calls = []
    real = transformer._ONEDNN_LINEAR
    if real is None:
        pytest.skip("this torch build has no oneDNN fused linear")

    class Counting:
        def __call__(self, *args):
            calls.append("linear")
            return real(*args)

        def binary(self, *args):
            calls.append("binary")
            return real.binary(*args)

    monkeypatch.setattr(transformer, "_ONEDNN_LINEAR", Counting())
    return calls


def test_the_switch_turns_the_fused_path_off(model_and_batch, monkeypatch):
    model, batch = model_and_batch
    calls = counting_op(monkeypatch)
    fused = forward(model, batch)
    assert calls, "the fused path should run in fp32 CPU inference"
    assert transformer.set_onednn_linear(False) is False
    calls.clear()
    plain = forward(model, batch)
    assert calls == [] and torch.allclose(fused, plain, atol=1e-5)


def test_a_torch_build_without_the_op_takes_the_plain_path(model_and_batch, monkeypatch):
    model, batch = model_and_batch
    expected = forward(model, batch)
    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace())  # an op namespace without the op
    assert transformer.set_onednn_linear(True) is False
    assert torch.allclose(forward(model, batch), expected, atol=1e-5)


def test_a_rejected_call_falls_back_with_a_warning(model_and_batch, monkeypatch):
    model, batch = model_and_batch
    expected = forward(model, batch)

    class Broken:
        def __call__(self, *args):
            raise RuntimeError("not supported here")

        binary = __call__

    monkeypatch.setattr(transformer, "_ONEDNN_LINEAR", Broken())
    with pytest.warns(UserWarning, match="oneDNN fused linear failed"):
        got = forward(model, batch)
    assert transformer._ONEDNN_LINEAR is None and torch.allclose(got, expected, atol=1e-5)


def test_the_environment_variable_turns_it_off():
    code = "from flava_kit.layers import transformer; print(transformer._ONEDNN_LINEAR is None)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "FLAVA_KIT_ONEDNN": "0"})
    assert result.stdout.strip() == "True", result.stderr
