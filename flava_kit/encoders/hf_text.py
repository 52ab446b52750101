"""A text encoder from HF transformers (BERT, RoBERTa, ...) as FLAVA's text encoder."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from flava_kit.outputs import EncoderOutput
from flava_kit.registry import register
from flava_kit.tensors import check_tensor


@register("encoder", "hf_text")
class HFTextEncoder(nn.Module):
    """An HF transformers text encoder: from a model directory (``path``) or a config.

    ``path`` is a local directory or an HF Hub id (``org/name[@revision]``, read through
    huggingface_hub's cache; with ``HF_HUB_OFFLINE=1`` nothing is downloaded). Without
    it, ``model_type`` (``bert``, ``roberta``, ...) and ``config`` (sizes etc.) build random
    weights. These models end in their last layer's output, so it serves both as
    ``last_hidden_state`` and as the states FLAVA fuses.
    """

    def __init__(
        self,
        model_type: str = "bert",
        path: str | None = None,
        config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if path is not None:
            from flava_kit.hub import resolve

            directory = resolve(path, "path")  # a local directory, or an HF Hub id through the hub cache
            if not directory.is_dir():
                raise ValueError(f"path '{path}' is not a model directory")
            self.model = AutoModel.from_pretrained(str(directory), local_files_only=True, **(config or {}))
        else:
            self.model = AutoModel.from_config(AutoConfig.for_model(model_type, **(config or {})))
        for attribute in ("hidden_size", "vocab_size"):
            if not hasattr(self.model.config, attribute):
                raise ValueError(f"{type(self.model).__name__} has no config.{attribute}; hf_text needs a text encoder")
        if gradient_checkpointing:
            self.set_gradient_checkpointing(True)
        self.hidden_size = self.model.config.hidden_size
        self.vocab_size = self.model.config.vocab_size
        self._takes_token_types = "token_type_ids" in inspect.signature(self.model.forward).parameters

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in the backward pass (transformers' own switch)."""
        if enabled:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.model.gradient_checkpointing_disable()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """``input_ids``, ``attention_mask`` (1 = real, 0 = padding), ``token_type_ids``: all ``[B, L]``."""
        check_tensor("input_ids", input_ids, "[B, L]", 2, floating=False)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None and self._takes_token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        last = out.last_hidden_state
        pooled = getattr(out, "pooler_output", None)
        return EncoderOutput(last_hidden_state=last, hidden_states_for_fusion=last, pooler_output=last[:, 0] if pooled is None else pooled)
