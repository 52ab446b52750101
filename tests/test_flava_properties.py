"""Properties of the standard FLAVA over random small configurations (hypothesis)."""

from __future__ import annotations

import torch
from hf_reference import random_hf_model
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import FlavaConfig

import flava_kit
from flava_kit.checkpoints.hf import load_hf_state_dict, recipe_from_hf_config


@st.composite
def configs(draw):
    """A random valid small FlavaConfig."""

    def transformer():
        heads = draw(st.integers(1, 3))
        return dict(num_hidden_layers=draw(st.integers(1, 2)), num_attention_heads=heads,
                    hidden_size=heads * draw(st.sampled_from([4, 8])), intermediate_size=draw(st.integers(4, 24)))  # fmt: skip

    patch = draw(st.sampled_from([4, 8]))
    image = dict(transformer(), patch_size=patch, image_size=patch * draw(st.integers(1, 4)))
    text = dict(transformer(), vocab_size=draw(st.integers(5, 40)), max_position_embeddings=16)
    return FlavaConfig(image_config=image, text_config=text, multimodal_config=transformer(),
                       projection_dim=draw(st.integers(2, 12)))  # fmt: skip


@st.composite
def cases(draw):
    config = draw(configs())
    batch = draw(st.integers(1, 3))
    length = draw(st.integers(2, 16))
    lengths = draw(st.lists(st.integers(1, length), min_size=batch, max_size=batch))  # real tokens per row
    grid = config.image_config.image_size // config.image_config.patch_size
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    size = config.image_config.image_size
    attention_mask = (torch.arange(length)[None] < torch.tensor(lengths)[:, None]).long()
    inputs = {
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "input_ids": torch.randint(0, config.text_config.vocab_size, (batch, length), generator=generator),
        "attention_mask": attention_mask,
        "bool_masked_pos": torch.rand(batch, grid * grid, generator=generator) < 0.4,
    }
    return config, inputs, seed


def flava_pair(config: FlavaConfig, seed: int):
    hf = random_hf_model(config, seed=seed)
    ours = flava_kit.build(recipe_from_hf_config(config)).eval()
    load_hf_state_dict(ours, hf.state_dict(), "in-memory HF model")
    return hf, ours


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_shapes_and_parity_over_random_configs(case):
    config, inputs, seed = case
    hf, ours = flava_pair(config, seed)
    batch, length = inputs["input_ids"].shape
    patches = (config.image_config.image_size // config.image_config.patch_size) ** 2
    with torch.no_grad():
        out = ours(**inputs)
        ref = hf(**inputs)
    assert out.image_embeddings.shape == (batch, 1 + patches, config.image_config.hidden_size)
    assert out.text_embeddings.shape == (batch, length, config.text_config.hidden_size)
    assert out.multimodal_embeddings.shape == (batch, 1 + 1 + patches + length, config.multimodal_config.hidden_size)
    assert out.image_features.shape == out.text_features.shape == (batch, config.projection_dim)
    assert torch.allclose(out.image_features.norm(dim=-1), torch.ones(batch), atol=1e-5)
    for field in ("image_embeddings", "text_embeddings", "multimodal_embeddings"):
        assert (getattr(out, field) - getattr(ref, field)).abs().max() < 1e-5, field


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_outputs_do_not_depend_on_masked_pixels(case):
    config, inputs, seed = case
    _, ours = flava_pair(config, seed)
    patch = config.image_config.patch_size
    grid = config.image_config.image_size // patch
    pixel_mask = inputs["bool_masked_pos"].reshape(-1, grid, grid)
    pixel_mask = pixel_mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2)[:, None]
    changed = dict(inputs, pixel_values=torch.where(pixel_mask, torch.randn_like(inputs["pixel_values"]) * 5, inputs["pixel_values"]))
    with torch.no_grad():
        a, b = ours(**inputs), ours(**changed)
    for field in ("image_embeddings", "multimodal_embeddings", "image_features"):
        assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-6), field


@settings(max_examples=30, deadline=None)
@given(case=cases())
def test_padded_token_ids_do_not_change_outputs_at_real_tokens(case):
    config, inputs, seed = case
    _, ours = flava_pair(config, seed)
    padding = inputs["attention_mask"] == 0
    other_ids = torch.randint(0, config.text_config.vocab_size, inputs["input_ids"].shape)
    changed = dict(inputs, input_ids=torch.where(padding, other_ids, inputs["input_ids"]))
    with torch.no_grad():
        a, b = ours(**inputs), ours(**changed)
    real = ~padding
    assert torch.allclose(a.text_embeddings[real], b.text_embeddings[real], atol=1e-6)
    assert torch.allclose(a.text_features, b.text_features, atol=1e-6)
    image_part = a.image_embeddings.shape[1] + 1
    assert torch.allclose(a.multimodal_embeddings[:, :image_part], b.multimodal_embeddings[:, :image_part], atol=1e-6)
    assert torch.allclose(a.multimodal_embeddings[:, image_part:][real], b.multimodal_embeddings[:, image_part:][real], atol=1e-6)
