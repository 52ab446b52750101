"""FLAVA's text encoder: BERT-style embeddings and a pre-LN transformer with a final LayerNorm."""

from __future__ import annotations

import torch
from torch import nn

from flava_kit.constraints import multiple_of, Count, Epsilon, Probability, Size, TokenId, Vocabulary
from flava_kit.layers import TransformerEncoder
from flava_kit.layers.init import flava_init_
from flava_kit.outputs import EncoderOutput
from flava_kit.registry import register
from flava_kit.tensors import check_tensor


@register("encoder", "flava_text")
class FlavaTextEncoder(nn.Module):
    """FLAVA's text encoder (HF ``FlavaTextModel``): word + position + token-type embeddings."""

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """``hidden_size`` must split evenly over ``num_heads`` (see :data:`flava_kit.contracts.RecipeChecks`)."""
        yield from multiple_of(node, path, "hidden_size", "num_heads", "each attention head gets hidden_size / num_heads")

    def __init__(
        self,
        vocab_size: Vocabulary = 30522,
        hidden_size: Size = 768,
        num_layers: Count = 12,
        num_heads: Size = 12,
        intermediate_size: Size = 3072,
        max_position_embeddings: Size = 512,
        type_vocab_size: Vocabulary = 2,
        pad_token_id: TokenId = 0,
        layer_norm_eps: Epsilon = 1e-12,
        qkv_bias: bool = True,
        dropout: Probability = 0.0,
        attention_dropout: Probability = 0.0,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.embed_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.encoder = TransformerEncoder(
            num_layers, hidden_size, num_heads=num_heads, intermediate_size=intermediate_size, layer_norm_eps=layer_norm_eps,
            qkv_bias=qkv_bias, dropout=dropout, attention_dropout=attention_dropout, gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip
        flava_init_(self)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in the backward pass instead of storing them."""
        self.encoder.gradient_checkpointing = enabled

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """``input_ids``, ``attention_mask`` (1 = real, 0 = padding), ``token_type_ids``: all ``[B, L]``."""
        check_tensor("input_ids", input_ids, "[B, L]", 2, floating=False)
        length = input_ids.shape[1]
        if length > self.max_position_embeddings:
            raise ValueError(f"input_ids: {length} tokens exceed max_position_embeddings {self.max_position_embeddings}")
        for name, extra in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if extra is not None and check_tensor(name, extra, "[B, L]", 2).shape != input_ids.shape:
                raise ValueError(f"{name}: expected shape {tuple(input_ids.shape)} like input_ids, got {tuple(extra.shape)}")
        if token_type_ids is None:  # all type 0: one row broadcast, no gather
            token_types = self.token_type_embeddings.weight[0]
        else:
            token_types = self.token_type_embeddings(token_type_ids)
        # Summed in HF's order (word + type, then position) so results match to the last bit.
        x = self.word_embeddings(input_ids) + token_types + self.position_embeddings.weight[:length]
        x = self.dropout(self.embed_norm(x))
        return self.encoder(x, attention_mask)
