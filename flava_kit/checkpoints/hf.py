"""HF transformers FLAVA checkpoints in and out.

An HF FLAVA directory holds ``config.json`` (a ``FlavaConfig``) and its weights
(``model.safetensors``, ``pytorch_model.bin``, or a sharded index of either). The weights of the
standard components map 1:1 onto HF's names; the only change of shape is q/k/v, which flava_kit
keeps fused (``attn.qkv``) and HF keeps as three linears.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from flava_kit.errors import CheckpointError

# Component (our attribute) -> HF attribute, and the type each must have to map 1:1.
_COMPONENTS = {
    "image_encoder": ("image_model", "flava_vit"),
    "text_encoder": ("text_model", "flava_text"),
    "fusion": ("multimodal_model", "flava_multimodal"),
}
_TOP_LEVEL = {"image_to_fusion": "image_to_mm_projection", "text_to_fusion": "text_to_mm_projection"}
_EMBEDDINGS = {  # inside a component: our prefix -> HF prefix (first match wins)
    "image_model": [("patch_embed.", "embeddings.patch_embeddings.projection."), ("cls_token", "embeddings.cls_token"),
                    ("mask_token", "embeddings.mask_token"), ("pos_embed", "embeddings.position_embeddings")],
    "text_model": [("word_embeddings.", "embeddings.word_embeddings."), ("position_embeddings.", "embeddings.position_embeddings."),
                   ("token_type_embeddings.", "embeddings.token_type_embeddings."), ("embed_norm.", "embeddings.LayerNorm.")],
    "multimodal_model": [],
}  # fmt: skip
_COMMON = [("encoder.norm.", "layernorm."), ("encoder.pooler.", "pooler."), ("cls_token", "cls_token")]
_LAYER = [("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."), ("attn.proj.", "attention.output.dense."),
          ("mlp.fc1.", "intermediate.dense."), ("mlp.fc2.", "output.dense.")]  # fmt: skip
_QKV = ("attention.attention.query.", "attention.attention.key.", "attention.attention.value.")
_LAYER_KEY = re.compile(r"encoder\.layers\.(\d+)\.(.*)")
# Buffers some HF checkpoints carry that hold no learned state.
_IGNORED = re.compile(r"^(flava\.)?text_model\.embeddings\.(position_ids|token_type_ids)$")


def hf_names(key: str) -> list[str]:
    """HF name(s) of one of our FlavaModel state-dict keys; three for a fused q/k/v tensor."""
    head, _, rest = key.partition(".")
    if head in _TOP_LEVEL:
        return [f"{_TOP_LEVEL[head]}.{rest}"]
    if head not in _COMPONENTS:
        return [key]  # image_projection, text_projection, logit_scale: same names
    hf = _COMPONENTS[head][0]
    layer = _LAYER_KEY.fullmatch(rest)
    if layer:
        index, inner = layer.groups()
        if inner.startswith("attn.qkv."):
            return [f"{hf}.encoder.layer.{index}.{q}{inner[len('attn.qkv.'):]}" for q in _QKV]
        for ours, theirs in _LAYER:
            if inner.startswith(ours):
                return [f"{hf}.encoder.layer.{index}.{theirs}{inner[len(ours):]}"]
    for ours, theirs in _EMBEDDINGS[hf] + _COMMON:
        if rest.startswith(ours):
            return [f"{hf}.{theirs}{rest[len(ours):]}"]
    raise CheckpointError(f"no HF FLAVA name for parameter '{key}'")


def check_standard(model: Any) -> None:
    """Raise unless ``model`` is built from the standard FLAVA components HF's format can hold."""
    from flava_kit.models.flava import FlavaModel
    from flava_kit.recipes import to_recipe

    if not isinstance(model, FlavaModel):
        raise CheckpointError(f"the HF FLAVA format holds a flava model, not a {type(model).__name__}")
    for attribute, (_, expected) in _COMPONENTS.items():
        actual = to_recipe(getattr(model, attribute))["type"]
        if actual != expected:
            raise CheckpointError(
                f"model.{attribute} is '{actual}': the HF FLAVA format holds only '{expected}' there; "
                f"save the state dict with safetensors instead, and the recipe beside it"
            )


def to_hf_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Our FlavaModel's weights under HF ``FlavaModel`` names (q/k/v split)."""
    check_standard(model)
    state = {}
    for key, tensor in model.state_dict().items():
        names = hf_names(key)
        parts = tensor.chunk(len(names), dim=0) if len(names) > 1 else (tensor,)
        state.update({name: part.contiguous() for name, part in zip(names, parts)})
    return state


def load_hf_state_dict(model: Any, hf_state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy an HF ``FlavaModel`` state dict into ``model``; return the keys that were skipped.

    A ``FlavaForPreTraining`` state dict (``flava.`` prefix) loads its FlavaModel part; its heads
    and codebook are returned as skipped. Missing keys and unexpected FlavaModel keys are errors.
    """
    check_standard(model)
    pretraining = any(k.startswith("flava.") for k in hf_state)
    available, skipped = {}, []
    for key, tensor in hf_state.items():
        if _IGNORED.match(key):
            continue
        if pretraining and not key.startswith("flava."):
            skipped.append(key)
            continue
        available[key.removeprefix("flava.") if pretraining else key] = tensor
    ours, missing, mismatched = {}, [], []
    for key, target in model.state_dict().items():
        names = hf_names(key)
        if any(n not in available for n in names):
            missing += [n for n in names if n not in available]
            continue
        tensor = torch.cat([available.pop(n) for n in names]) if len(names) > 1 else available.pop(names[0])
        if tensor.shape != target.shape:
            mismatched.append(f"{names[0]}: checkpoint {tuple(tensor.shape)}, model {tuple(target.shape)}")
        ours[key] = tensor
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if available:
        problems.append(f"unexpected keys ({len(available)}): {', '.join(sorted(available)[:20])}{' ...' if len(available) > 20 else ''}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:20])}")
    if problems:
        raise CheckpointError(f"{source} does not match the model built from its config.json:\n  " + "\n  ".join(problems))
    model.load_state_dict(ours, strict=True)
    return sorted(skipped)


# --- configs ------------------------------------------------------------------------------------
def recipe_from_hf_config(config: Any) -> dict:
    """The flava_kit recipe of an HF ``FlavaConfig``."""
    image, text, fusion = config.image_config, config.text_config, config.multimodal_config
    for name, sub in (("image_config", image), ("text_config", text), ("multimodal_config", fusion)):
        if sub.hidden_act != "gelu":
            raise CheckpointError(f"config.json {name}.hidden_act is '{sub.hidden_act}'; flava_kit's layers use 'gelu'")
    if not fusion.use_cls_token:
        raise CheckpointError("config.json multimodal_config.use_cls_token is false; flava_multimodal always uses [CLS_M]")

    def transformer(sub: Any) -> dict:
        return {
            "hidden_size": sub.hidden_size, "num_layers": sub.num_hidden_layers, "num_heads": sub.num_attention_heads,
            "intermediate_size": sub.intermediate_size, "layer_norm_eps": sub.layer_norm_eps, "qkv_bias": sub.qkv_bias,
            "dropout": sub.hidden_dropout_prob, "attention_dropout": sub.attention_probs_dropout_prob,
        }  # fmt: skip

    return {
        "recipe_version": 1,
        "model": {
            "type": "flava",
            "image_encoder": {"type": "flava_vit", **transformer(image), "image_size": image.image_size,
                              "patch_size": image.patch_size, "num_channels": image.num_channels},
            "text_encoder": {"type": "flava_text", **transformer(text), "vocab_size": text.vocab_size,
                             "max_position_embeddings": text.max_position_embeddings,
                             "type_vocab_size": text.type_vocab_size, "pad_token_id": text.pad_token_id},
            "fusion": {"type": "flava_multimodal", **transformer(fusion)},
            "projection_dim": config.projection_dim,
            "logit_scale_init": config.logit_scale_init_value,
        },
    }  # fmt: skip


def hf_config_from_recipe(recipe: dict) -> Any:
    """An HF ``FlavaConfig`` equal to a standard FLAVA recipe."""
    from transformers import FlavaConfig

    model = recipe["model"]

    def transformer(node: dict) -> dict:
        return {
            "hidden_size": node["hidden_size"], "num_hidden_layers": node["num_layers"],
            "num_attention_heads": node["num_heads"], "intermediate_size": node["intermediate_size"],
            "layer_norm_eps": node["layer_norm_eps"], "qkv_bias": node["qkv_bias"], "hidden_act": "gelu",
            "hidden_dropout_prob": node["dropout"], "attention_probs_dropout_prob": node["attention_dropout"],
        }  # fmt: skip

    image, text = model["image_encoder"], model["text_encoder"]
    return FlavaConfig(
        image_config={**transformer(image), "image_size": image["image_size"], "patch_size": image["patch_size"],
                      "num_channels": image["num_channels"]},
        text_config={**transformer(text), "vocab_size": text["vocab_size"], "type_vocab_size": text["type_vocab_size"],
                     "max_position_embeddings": text["max_position_embeddings"], "pad_token_id": text["pad_token_id"]},
        multimodal_config={**transformer(model["fusion"]), "use_cls_token": True},
        projection_dim=model["projection_dim"],
        logit_scale_init_value=model["logit_scale_init"],
        architectures=["FlavaModel"],
    )  # fmt: skip


# --- files ----------------------------------------------------------------------------------------
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
RECIPE_FILE = "flava_kit_recipe.yaml"


def read_weights(directory: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Load an HF weights file (or sharded index) from ``directory``: safetensors or weights-only pickles."""
    found = next((directory / name for name in WEIGHT_FILES if (directory / name).is_file()), None)
    if found is None:
        raise CheckpointError(f"{directory}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    files = [found]
    if found.name.endswith(".index.json"):
        try:
            weight_map = json.loads(found.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{found}: not a valid weights index ({exc})") from exc
        files = [directory / name for name in sorted(set(weight_map.values()))]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            if file.suffix == ".safetensors":
                state.update(load_file(file))
            else:
                state.update(torch.load(file, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated, corrupt, or not a tensor file at all
            raise CheckpointError(f"{file}: cannot read the weights ({type(exc).__name__}: {exc})") from exc
    return state, str(found)


def from_pretrained(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """Build a FlavaModel from an HF FLAVA directory (``FlavaModel`` or ``FlavaForPreTraining``).

    ``overrides`` apply to the recipe derived from ``config.json`` (e.g.
    ``model.image_encoder.gradient_checkpointing=true``). Weights in the checkpoint that a
    FlavaModel does not hold (pretraining heads, codebook) are listed in ``model.skipped_keys``.
    """
    from transformers import FlavaConfig

    from flava_kit.recipes import build, load_recipe

    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no config.json, so this is not an HF FLAVA directory")
    try:
        config = FlavaConfig.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"{directory / 'config.json'}: not a valid FlavaConfig ({type(exc).__name__}: {exc})") from exc
    recipe = load_recipe(recipe_from_hf_config(config), overrides)
    state, source = read_weights(directory)
    model = build(recipe)
    model.skipped_keys = load_hf_state_dict(model, state, source)
    return model


def save_pretrained(model: Any, path: str | Path) -> None:
    """Write ``model`` as an HF FLAVA directory that ``transformers.FlavaModel.from_pretrained`` loads.

    Also writes the resolved flava_kit recipe beside it (``flava_kit_recipe.yaml``). Files are
    written under temporary names first, so an interrupted save leaves no half-written file.
    """
    import yaml

    from flava_kit.recipes import to_recipe

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = to_hf_state_dict(model)
    recipe = to_recipe(model)
    config = hf_config_from_recipe(recipe).to_dict()
    writes = {
        "model.safetensors": lambda tmp: save_file(state, tmp, metadata={"format": "pt"}),
        "config.json": lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2, sort_keys=True)),
        RECIPE_FILE: lambda tmp: Path(tmp).write_text(yaml.safe_dump(recipe, sort_keys=False)),
    }
    for name, write in writes.items():
        temporary = directory / f".{name}.tmp"
        write(str(temporary))
        temporary.replace(directory / name)
