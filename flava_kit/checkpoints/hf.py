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

from flava_kit.checkpoints.mapping import Layout, foreign_names, load_mapped

_MASKED_HEAD = [("dense.", "transform.dense."), ("norm.", "transform.LayerNorm."), ("decoder.", "decoder.")]
HF = Layout(
    flava_prefix="flava.",
    components={"image_encoder": "image_model", "text_encoder": "text_model", "fusion": "multimodal_model",
                "image_to_fusion": "image_to_mm_projection", "text_to_fusion": "text_to_mm_projection"},
    embeddings={
        "image_encoder": [("patch_embed.", "embeddings.patch_embeddings.projection."), ("cls_token", "embeddings.cls_token"),
                          ("mask_token", "embeddings.mask_token"), ("pos_embed", "embeddings.position_embeddings")],
        "text_encoder": [("word_embeddings.", "embeddings.word_embeddings."), ("position_embeddings.", "embeddings.position_embeddings."),
                         ("token_type_embeddings.", "embeddings.token_type_embeddings."), ("embed_norm.", "embeddings.LayerNorm.")],
        "fusion": [],
    },
    common=[("encoder.norm.", "layernorm."), ("encoder.pooler.", "pooler."), ("cls_token", "cls_token")],
    layer=[("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."), ("attn.proj.", "attention.output.dense."),
           ("mlp.fc1.", "intermediate.dense."), ("mlp.fc2.", "output.dense.")],
    qkv=("attention.attention.query.", "attention.attention.key.", "attention.attention.value."),
    layer_path="encoder.layer",
    heads={**{name: (f"{name}_head.", _MASKED_HEAD) for name in ("mim", "mlm", "mmm_image", "mmm_text")},
           "itm": ("itm_head.", [("pooler.dense.", "pooler.dense."), ("classifier.", "seq_relationship.")])},
    codebook=lambda key: "image_codebook." + key,  # the same module layout as HF's
    logit_scale="flava.logit_scale",
)  # fmt: skip
_COMPONENTS = {"image_encoder": "flava_vit", "text_encoder": "flava_text", "fusion": "flava_multimodal"}
# Buffers some HF checkpoints carry that hold no learned state.
_IGNORED = re.compile(r"^(flava\.)?text_model\.embeddings\.(position_ids|token_type_ids)$")
# HF ties each masked-prediction head's ``bias`` to its ``decoder.bias``; checkpoints may hold either.
_TIED_BIAS = re.compile(r"^(mim|mlm|mmm_image|mmm_text)_head\.bias$")


def hf_names(key: str) -> list[str]:
    """HF name(s) of one of our state-dict keys (FlavaModel or FlavaForPreTraining); three for fused q/k/v."""
    return foreign_names(key, HF, pretraining=key.startswith(("flava.", "codebook.", "objectives.")))


def not_standard(model: Any) -> str | None:
    """Why HF's FLAVA format cannot hold ``model``, or None where it can (the standard FLAVA components)."""
    from flava_kit.models.flava import FlavaModel
    from flava_kit.models.flava_pretraining import FlavaForPreTraining
    from flava_kit.recipe import to_recipe

    if not isinstance(model, (FlavaModel, FlavaForPreTraining)):
        return f"the HF FLAVA format holds a flava or flava_pretraining model, not a {type(model).__name__}"
    node = to_recipe(model)["model"]
    expected = dict(_COMPONENTS)
    if isinstance(model, FlavaForPreTraining):
        expected["codebook"] = "dalle"
        objectives = node["objectives"] or {}
        # HF's format names its heads after the objectives: each must be the objective of that name.
        expected.update({f"objectives.{k}": k for k in objectives})
        node = {**node, **{f"objectives.{k}": v for k, v in objectives.items()}}
    for path, kind in expected.items():
        actual = (node.get(path) or {"type": kind})["type"]
        if actual != kind:
            return f"model.{path} is '{actual}': the HF FLAVA format holds only '{kind}' there"
    return None


def check_standard(model: Any) -> None:
    """Raise unless ``model`` is built from the standard FLAVA components HF's format can hold."""
    reason = not_standard(model)
    if reason is not None:
        raise CheckpointError(f"{reason}; save the state dict with safetensors instead, and the recipe beside it")


def to_hf_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Our FlavaModel's weights under HF ``FlavaModel`` names (q/k/v split)."""
    check_standard(model)
    state = {}
    for key, tensor in model.state_dict().items():
        names = hf_names(key)
        parts = tensor.chunk(len(names), dim=0) if len(names) > 1 else (tensor,)
        state.update({name: part.contiguous() for name, part in zip(names, parts)})
        if names[0].endswith("_head.decoder.bias"):  # HF's tied copy, so its loader finds both
            state[names[0].replace(".decoder.bias", ".bias")] = tensor.clone()
    return state


def load_hf_state_dict(model: Any, hf_state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy an HF FLAVA state dict into ``model``; return the keys that were skipped.

    Into a FlavaModel, a ``FlavaForPreTraining`` state dict loads its ``flava.`` part; its heads
    and codebook are returned as skipped. Missing, unexpected or mis-shaped keys are errors.
    """
    from flava_kit.models.flava import FlavaModel

    check_standard(model)
    only_flava_part = isinstance(model, FlavaModel) and any(k.startswith("flava.") for k in hf_state)
    available, skipped, tied = {}, [], {}
    for key, tensor in hf_state.items():
        if _IGNORED.match(key):
            continue
        if only_flava_part and not key.startswith("flava."):
            skipped.append(key)
            continue
        if _TIED_BIAS.match(key):
            tied[key.replace(".bias", ".decoder.bias")] = tensor
            continue
        available[key.removeprefix("flava.") if only_flava_part else key] = tensor
    for key, tensor in tied.items():  # a checkpoint that kept only the tied name
        available.setdefault(key, tensor)
    load_mapped(model, available, hf_names, source)
    return sorted(skipped)


# --- configs ------------------------------------------------------------------------------------
def recipe_from_hf_config(config: Any, pretraining: bool = False) -> dict:
    """The flava_kit recipe of an HF ``FlavaConfig``: a ``flava`` model, or ``flava_pretraining``."""
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

    recipe = {
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
    if pretraining:
        recipe["model"].update(_pretraining_nodes(config))
    return recipe


def _pretraining_nodes(config: Any) -> dict:
    """The codebook and objectives of HF ``FlavaForPreTraining`` (its heads' widths, eps and weights)."""
    image, text, codebook = config.image_config, config.text_config, config.image_codebook_config
    ignore = config.ce_ignore_index

    def masked(objective: str, sub: Any, weight: float) -> dict:
        return {"type": objective, "hidden_size": sub.hidden_size, "vocab_size": sub.vocab_size,
                "layer_norm_eps": sub.layer_norm_eps, "weight": weight, "ignore_index": ignore}  # fmt: skip

    grid = image.image_size // image.patch_size
    return {
        "type": "flava_pretraining",
        "codebook": {"type": "dalle", "hidden_size": codebook.hidden_size, "num_blocks_per_group": codebook.num_blocks_per_group,
                     "vocab_size": codebook.vocab_size, "input_channels": codebook.input_channels, "input_size": 8 * grid},
        "objectives": {
            "mim": masked("mim", image, config.mim_weight),
            "mlm": masked("mlm", text, config.mlm_weight),
            "itm": {"type": "itm", "hidden_size": config.hidden_size, "weight": config.itm_weight},
            "global_contrastive": {"type": "global_contrastive", "weight": config.global_contrastive_weight},
            "mmm_image": masked("mmm_image", image, config.mmm_image_weight),
            "mmm_text": masked("mmm_text", text, config.mmm_text_weight),
        },
        "ignore_index": ignore,
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
    extra: dict[str, Any] = {"architectures": ["FlavaModel"]}
    image_vocab = {}
    if model["type"] == "flava_pretraining":
        objectives, codebook = model["objectives"] or {}, model["codebook"]
        weights = {f"{name}_weight": node["weight"] for name, node in objectives.items()}
        missing = {f"{name}_weight": 0.0 for name in ("mim", "mlm", "itm", "global_contrastive", "mmm_image", "mmm_text")}
        extra = {"architectures": ["FlavaForPreTraining"], **missing, **weights, "ce_ignore_index": model["ignore_index"],
                 "hidden_size": model["fusion"]["hidden_size"], "init_codebook": codebook is not None}  # fmt: skip
        if codebook is not None:
            image_vocab = {"vocab_size": codebook["vocab_size"]}
            extra["image_codebook_config"] = {key: codebook[key] for key in ("hidden_size", "num_blocks_per_group", "vocab_size", "input_channels")}
    return FlavaConfig(
        image_config={**transformer(image), "image_size": image["image_size"], "patch_size": image["patch_size"],
                      "num_channels": image["num_channels"], **image_vocab},
        text_config={**transformer(text), "vocab_size": text["vocab_size"], "type_vocab_size": text["type_vocab_size"],
                     "max_position_embeddings": text["max_position_embeddings"], "pad_token_id": text["pad_token_id"]},
        multimodal_config={**transformer(model["fusion"]), "use_cls_token": True},
        projection_dim=model["projection_dim"],
        logit_scale_init_value=model["logit_scale_init"],
        **extra,
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


def from_pretrained(path: str | Path, overrides: tuple[str, ...] | list[str] = (), model: str = "auto") -> Any:
    """Build a model from an HF FLAVA directory (``FlavaModel`` or ``FlavaForPreTraining``), or an HF
    Hub id (``facebook/flava-full``, ``org/name@revision``) read through huggingface_hub's cache
    (see :mod:`flava_kit.hub`).

    ``model="auto"`` builds what the checkpoint holds (``flava`` or ``flava_pretraining``, with
    heads and codebook); ``model="flava"`` loads only the FlavaModel part of a pretraining
    checkpoint and lists what it left out in ``skipped_keys``. ``overrides`` apply to the recipe
    derived from ``config.json`` (e.g. ``model.image_encoder.gradient_checkpointing=true``).
    """
    from flava_kit.hub import resolve

    return from_hf_directory(resolve(path, "from_pretrained"), overrides, model)


def from_hf_directory(directory: Path, overrides: tuple[str, ...] | list[str] = (), model: str = "auto") -> Any:
    """:func:`from_pretrained` on a local HF FLAVA ``directory`` (an id already resolved: what
    callers below the entry point use)."""
    from transformers import FlavaConfig

    from flava_kit.recipe import build, load_recipe

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no config.json, so this is not an HF FLAVA directory")
    try:
        config = FlavaConfig.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"{directory / 'config.json'}: not a valid FlavaConfig ({type(exc).__name__}: {exc})") from exc
    if model not in ("auto", "flava", "flava_pretraining"):
        raise CheckpointError(f"model must be 'auto', 'flava' or 'flava_pretraining', got {model!r}")
    state, source = read_weights(directory)
    holds_pretraining = any(key.startswith("flava.") for key in state)
    if model == "flava_pretraining" and not holds_pretraining:
        raise CheckpointError(f"{source} holds a FlavaModel, without the pretraining heads and codebook")
    pretraining = holds_pretraining and model != "flava"
    built = build(load_recipe(recipe_from_hf_config(config, pretraining), overrides))
    built.skipped_keys = load_hf_state_dict(built, state, source)
    return built


def save_pretrained(model: Any, path: str | Path) -> None:
    """Write ``model`` as an HF FLAVA directory that ``transformers.FlavaModel.from_pretrained`` loads.

    Also writes the resolved flava_kit recipe beside it (``flava_kit_recipe.yaml``). Files are
    written under temporary names first, so an interrupted save leaves no half-written file.
    """
    import yaml

    from flava_kit.recipe import to_recipe

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
