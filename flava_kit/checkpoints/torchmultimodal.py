"""TorchMultimodal FLAVA pretraining state dicts in (``FLAVAForPreTraining.state_dict()``).

The key map was derived from TorchMultimodal's published source (``torchmultimodal-nightly``) and
is checked against a fixture made with the real package (``tests/fixtures``). TorchMultimodal's
objectives differ from HF's in two settings, so its checkpoints go with the ``flava_pretrain_tmm``
recipe: ignore index -1 and head LayerNorm eps 1e-5.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from flava_kit.checkpoints.hf import HF
from flava_kit.checkpoints.mapping import foreign_names, load_mapped
from flava_kit.errors import CheckpointError

_MASKED_HEAD = [("dense.", "dense."), ("norm.", "layer_norm."), ("decoder.", "decoder.")]


def _codebook_name(key: str) -> str:
    """Ours (HF's DALL-E layout) -> TorchMultimodal's DALL-E encoder names (``w``/``b`` parameters)."""
    name = key.replace(".group.", ".").replace(".res_path.path.", ".res_path.")
    name = re.sub(r"\.weight$", ".w", re.sub(r"\.bias$", ".b", name))
    return "image_codebook.encoder." + name


# TorchMultimodal's names descend from HF's: its layout is HF's with these differences.
TORCHMULTIMODAL = replace(
    HF,
    flava_prefix="model.",
    components={"fusion": "mm_encoder", "image_to_fusion": "image_to_mm_projection", "text_to_fusion": "text_to_mm_projection"},
    embeddings={**HF.embeddings, "text_encoder": [(ours, theirs.replace("LayerNorm", "layer_norm")) for ours, theirs in HF.embeddings["text_encoder"]]},
    layer=[("norm1.", "attention_layernorm."), ("norm2.", "feedforward_layernorm."), ("attn.proj.", "attention.output."),
           ("mlp.fc1.", "feedforward.model.0."), ("mlp.fc2.", "feedforward.model.2.")],
    qkv=("attention.query.", "attention.key.", "attention.value."),
    heads={"mim": ("loss.mim_loss.cls.", _MASKED_HEAD), "mlm": ("loss.mlm_loss.cls.", _MASKED_HEAD),
           "mmm_image": ("loss.mmm_loss.mim.cls.", _MASKED_HEAD), "mmm_text": ("loss.mmm_loss.mlm.cls.", _MASKED_HEAD),
           "itm": ("loss.itm_loss.", [("pooler.dense.", "pooler.dense."), ("classifier.", "cls.seq_relationship.")])},
    codebook=_codebook_name,
    logit_scale="loss.contrastive_loss.logit_scale",
)  # fmt: skip
# Each masked-prediction head's ``cls.bias`` is tied to its ``cls.decoder.bias``.
_TIED_BIAS = re.compile(r"^loss\.(mim_loss|mlm_loss|mmm_loss\.mim|mmm_loss\.mlm)\.cls\.bias$")


def torchmultimodal_names(key: str) -> list[str]:
    """TorchMultimodal name(s) of one of our flava_pretraining keys; three for fused q/k/v."""
    return foreign_names(key, TORCHMULTIMODAL, pretraining=True)


def load_torchmultimodal_state_dict(model: Any, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Copy a TorchMultimodal ``FLAVAForPreTraining`` state dict into a flava_pretraining model, strictly."""
    from flava_kit.models.flava_pretraining import FlavaForPreTraining

    if not isinstance(model, FlavaForPreTraining):
        raise CheckpointError(f"TorchMultimodal FLAVA pretraining checkpoints load into flava_pretraining, not {type(model).__name__}")
    available = {}
    for key, tensor in state.items():
        if _TIED_BIAS.match(key):
            available.setdefault(key.replace(".cls.bias", ".cls.decoder.bias"), tensor)
        else:
            available[key] = tensor
    load_mapped(model, available, torchmultimodal_names, source)


def from_torchmultimodal(path: str | Path, recipe: str = "flava_pretrain_tmm", overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """Build ``recipe`` (with ``overrides``) and load a TorchMultimodal checkpoint file into it.

    The file is a ``FLAVAForPreTraining`` state dict saved with ``torch.save`` (read with
    ``weights_only=True``; also accepted nested under ``state_dict`` or ``model``) or safetensors.
    """
    from safetensors.torch import load_file

    from flava_kit.recipe import build

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no such checkpoint file")
    try:
        state = load_file(file) if file.suffix == ".safetensors" else torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{file}: cannot read the weights ({type(exc).__name__}: {exc})") from exc
    for nested in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(nested), dict):
            state = state[nested]
    model = build(recipe, overrides)
    load_torchmultimodal_state_dict(model, state, str(file))
    return model
