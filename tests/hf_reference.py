"""Helpers for tests against HF transformers' FLAVA, the reference implementation."""

from __future__ import annotations

import torch
from transformers import FlavaConfig, FlavaModel


def tiny_hf_config(**overrides) -> FlavaConfig:
    """A small FlavaConfig whose widths differ between parts, so a mix-up cannot go unnoticed."""
    image = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, image_size=32, patch_size=8)
    text = dict(vocab_size=99, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, max_position_embeddings=40)
    fusion = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40)
    return FlavaConfig(image_config=image, text_config=text, multimodal_config=fusion, projection_dim=16, **overrides)


def random_hf_model(config: FlavaConfig, seed: int = 0, std: float = 0.2) -> FlavaModel:
    """An HF FlavaModel with *every* parameter random (HF zero-initialises some, hiding mapping errors)."""
    torch.manual_seed(seed)
    model = FlavaModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, std)
    return model


def batch(config: FlavaConfig, batch_size: int = 3, text_length: int = 9, seed: int = 1, image_size: int | None = None) -> dict:
    """Pixels, padded text (rows padded by different amounts) and a few masked patches."""
    generator = torch.Generator().manual_seed(seed)
    size = image_size or config.image_config.image_size
    patches = (size // config.image_config.patch_size) ** 2
    attention_mask = torch.ones(batch_size, text_length, dtype=torch.long)
    for row in range(1, batch_size):
        attention_mask[row, text_length - 2 * row :] = 0
    bool_masked_pos = torch.zeros(batch_size, patches, dtype=torch.bool)
    bool_masked_pos[0, 2:6] = True
    bool_masked_pos[-1, :3] = True
    return {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "input_ids": torch.randint(1, config.text_config.vocab_size, (batch_size, text_length), generator=generator) * attention_mask,
        "attention_mask": attention_mask,
        "bool_masked_pos": bool_masked_pos,
    }


def tiny_pretraining_config() -> FlavaConfig:
    """A small FlavaForPreTraining config: 112 px images in 8 px patches (the codebook's 14x14 grid)."""
    config = tiny_hf_config(image_codebook_config=dict(hidden_size=8, num_blocks_per_group=1, vocab_size=40))
    config.image_config.image_size, config.image_config.patch_size, config.image_config.vocab_size = 112, 8, 40
    # HF's MMM heads are as wide as the unimodal encoders and its ITM head as config.hidden_size,
    # yet both read the fused states: every width must agree for HF to run at all.
    config.image_config.hidden_size = config.text_config.hidden_size = config.multimodal_config.hidden_size = 32
    config.hidden_size = 32
    return config


def random_hf_pretraining(config: FlavaConfig, seed: int = 0):
    """An HF FlavaForPreTraining with every parameter random (the frozen codebook too)."""
    from transformers import FlavaForPreTraining

    torch.manual_seed(seed)
    model = FlavaForPreTraining(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.05 if name.startswith("image_codebook") else 0.2)
    return model


def pretraining_batch(config: FlavaConfig, batch_size: int = 4, text_length: int = 10, seed: int = 2) -> dict:
    """A paired batch with MLM-masked text, masked patches, codebook pixels and ITM negatives."""
    inputs = batch(config, batch_size, text_length, seed)
    generator = torch.Generator().manual_seed(seed)
    selected = (torch.rand(batch_size, text_length, generator=generator) < 0.3) & inputs["attention_mask"].bool()
    selected[:, 1] = True  # at least one per row
    inputs["mlm_labels"] = torch.where(selected, inputs["input_ids"], -100)
    inputs["input_ids_masked"] = torch.where(selected, 3, inputs["input_ids"])
    patches = (config.image_config.image_size // config.image_config.patch_size) ** 2
    inputs["bool_masked_pos"] = torch.rand(batch_size, patches, generator=generator) < 0.4
    inputs["codebook_pixel_values"] = torch.rand(batch_size, 3, 112, 112, generator=generator)
    inputs["itm_labels"] = torch.tensor([1, 0] * (batch_size // 2) + [1] * (batch_size % 2))
    return inputs
