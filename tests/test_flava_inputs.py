"""Wrong inputs get errors naming the argument and the expected shape; training switches work."""

from __future__ import annotations

import pytest
import torch

import flava_kit
from flava_kit.errors import ShapeError


@pytest.fixture(scope="module")
def model():
    return flava_kit.build("flava_tiny").eval()


def good(model) -> dict:
    return model.example_inputs(batch_size=2, text_length=6)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda x: {"pixel_values": x["pixel_values"][0]}, r"pixel_values: expected shape \[B, C, H, W\], got \(3, 64, 64\)"),
        (lambda x: {"pixel_values": x["pixel_values"].long()}, r"pixel_values: expected a floating-point tensor"),
        (lambda x: {"pixel_values": x["pixel_values"][:, :1]}, r"pixel_values: expected shape \[B, 3, H, W\]"),
        (lambda x: {"pixel_values": x["pixel_values"][..., :60, :60]}, r"pixel_values: height and width must be multiples of 16"),
        (lambda x: {"pixel_values": x["pixel_values"].numpy()}, r"pixel_values: expected a tensor .*got ndarray"),
        (lambda x: {"input_ids": x["input_ids"].float()}, r"input_ids: expected an integer or bool tensor"),
        (lambda x: {"input_ids": x["input_ids"][0]}, r"input_ids: expected shape \[B, L\]"),
        (lambda x: {"input_ids": torch.zeros(2, 100, dtype=torch.long), "attention_mask": None}, r"input_ids: 100 tokens exceed max_position_embeddings 77"),
        (lambda x: {"attention_mask": x["attention_mask"][:, :3]}, r"attention_mask: expected shape \(2, 6\) like input_ids"),
        (lambda x: {"bool_masked_pos": torch.zeros(2, 5, dtype=torch.bool)}, r"bool_masked_pos: expected shape \[2, 16\]"),
        (lambda x: {"bool_masked_pos": torch.zeros(2, 16)}, r"bool_masked_pos: expected an integer or bool tensor"),
        (lambda x: {"input_ids": x["input_ids"][:1], "attention_mask": x["attention_mask"][:1]}, r"different batch sizes \(2 and 1\)"),
        (lambda x: {"pixel_values": None, "input_ids": None}, r"needs pixel_values, input_ids, or both"),
        (lambda x: {"pixel_values": None}, r"bool_masked_pos was given without pixel_values"),
    ],
)
def test_wrong_inputs_name_the_argument(model, change, message):
    inputs = {**good(model), "bool_masked_pos": torch.zeros(2, 16, dtype=torch.bool)}
    inputs.update(change(inputs))
    with pytest.raises(ValueError, match=message):
        model(**inputs)


def test_shape_errors_are_flava_kit_errors(model):
    with pytest.raises(ShapeError):
        model(pixel_values=torch.zeros(3, 64, 64))


@pytest.mark.parametrize("fusion", ["flava_multimodal", "cross_attention"])
def test_gradient_checkpointing_gives_the_same_gradients(fusion):
    torch.manual_seed(0)
    swap = [f"model.fusion.type={fusion}"]
    plain = flava_kit.build("flava_tiny", swap)
    checkpointed = flava_kit.build("flava_tiny", swap + [f"model.{part}.gradient_checkpointing=true" for part in ("image_encoder", "text_encoder", "fusion")])
    checkpointed.load_state_dict(plain.state_dict())
    inputs = plain.example_inputs()
    for model in (plain, checkpointed):
        model.train()
        out = model(**inputs)
        (out.multimodal_embeddings.square().mean() + out.image_features.sum()).backward()
    def flags(model):
        return [getattr(m, "gradient_checkpointing", False) for m in model.fusion.modules()]

    assert any(flags(checkpointed)) and not any(flags(plain))
    compared = 0
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name  # e.g. poolers get none from this loss
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
            compared += 1
    assert compared > 50


def test_dropout_is_active_in_training_only():
    model = flava_kit.build("flava_tiny", ["model.fusion.dropout=0.5"])
    inputs = model.example_inputs()
    model.train()
    assert not torch.equal(model(**inputs).multimodal_embeddings, model(**inputs).multimodal_embeddings)
    model.eval()
    assert torch.equal(model(**inputs).multimodal_embeddings, model(**inputs).multimodal_embeddings)
