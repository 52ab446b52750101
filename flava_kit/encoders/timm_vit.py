"""Any timm Vision Transformer as FLAVA's image encoder."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from flava_kit.constraints import Size
from flava_kit.outputs import EncoderOutput
from flava_kit.registry import register
from flava_kit.tensors import check_size, check_tensor


@register("encoder", "timm_vit")
class TimmViT(nn.Module):
    """A timm ViT (any ``model_name`` with a class token) with a learned mask token for MIM.

    ``pretrained`` is false by default: tests and recipes build random weights with no network.
    ``image_size`` sets the native size; other sizes work too (timm's dynamic position
    embeddings). ``model_kwargs`` go to ``timm.create_model`` (e.g. ``depth``, ``embed_dim``).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch16_224",
        pretrained: bool = False,
        image_size: Size | None = None,
        gradient_checkpointing: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        import timm
        from timm.models.vision_transformer import VisionTransformer

        if not timm.list_models(model_name):
            close = difflib.get_close_matches(model_name, timm.list_models("*vit*"), n=3)
            raise ValueError(f"timm has no model '{model_name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))
        kwargs = dict(model_kwargs or {})
        if image_size is not None:
            kwargs["img_size"] = image_size
        try:
            self.vit = timm.create_model(model_name, pretrained=pretrained, num_classes=0, dynamic_img_size=True, **kwargs)
        except TypeError as exc:  # a non-ViT architecture refuses the ViT-only options
            raise ValueError(f"timm model '{model_name}' is not a VisionTransformer, which timm_vit takes ({exc})") from exc
        if not isinstance(self.vit, VisionTransformer):
            raise ValueError(f"timm model '{model_name}' is a {type(self.vit).__name__}, not a VisionTransformer, which timm_vit takes")
        if self.vit.cls_token is None or self.vit.num_prefix_tokens != 1:
            raise ValueError(
                f"timm model '{model_name}' has {self.vit.num_prefix_tokens} prefix tokens; FLAVA's image "
                f"encoder contract needs exactly one class token first"
            )
        self.vit.set_grad_checkpointing(gradient_checkpointing)
        self.hidden_size = self.vit.embed_dim
        self.image_size = self.vit.patch_embed.img_size[0]
        self.grid_size = tuple(self.vit.patch_embed.grid_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_channels = self.vit.patch_embed.proj.in_channels
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.hidden_size))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass (timm's own switch)."""
        self.vit.set_grad_checkpointing(enabled)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> EncoderOutput:
        """``pixel_values``: ``[B, C, H, W]``; ``bool_masked_pos``: ``[B, N]``, True = replace by the mask token."""
        check_tensor("pixel_values", pixel_values, "[B, C, H, W]", 4, floating=True)
        check_size("pixel_values", pixel_values, 1, self.num_channels, f"[B, {self.num_channels}, H, W]")
        x = self.vit.patch_embed(pixel_values)  # [B, rows, cols, D] with dynamic image sizes
        if bool_masked_pos is not None:
            check_tensor("bool_masked_pos", bool_masked_pos, "[B, N]", (2, 3), floating=False)
            if bool_masked_pos[0].numel() != x.shape[1] * x.shape[2] or bool_masked_pos.shape[0] != x.shape[0]:
                raise ValueError(f"bool_masked_pos: expected shape [{x.shape[0]}, {x.shape[1] * x.shape[2]}], got {tuple(bool_masked_pos.shape)}")
            weight = bool_masked_pos.reshape(x.shape[:3]).unsqueeze(-1).to(x.dtype)
            x = x * (1.0 - weight) + self.mask_token * weight  # masked pixels get exactly zero gradient
        x = self.vit.norm_pre(self.vit.patch_drop(self.vit._pos_embed(x)))
        states = self.vit.blocks(x) if not (self.vit.grad_checkpointing and self.training) else self._checkpointed(x)
        last = self.vit.norm(states)
        return EncoderOutput(last_hidden_state=last, hidden_states_for_fusion=states, pooler_output=self.vit.forward_head(last, pre_logits=True))

    def _checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        from timm.models import checkpoint_seq

        return checkpoint_seq(self.vit.blocks, x)
