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
