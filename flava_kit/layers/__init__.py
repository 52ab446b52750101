"""Shared building blocks: one pre-LN transformer layer/encoder for every FLAVA encoder, a pooler."""

from flava_kit.layers.transformer import (
    Attention,
    Mlp,
    Pooler,
    TransformerEncoder,
    TransformerLayer,
    linear,
    padding_to_attention_mask,
    run_layer,
)

__all__ = ["Attention", "Mlp", "Pooler", "TransformerEncoder", "TransformerLayer", "linear", "padding_to_attention_mask", "run_layer"]
