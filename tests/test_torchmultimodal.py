"""TorchMultimodal FLAVA checkpoints: strict key mapping and outputs against the real package.

``fixtures/torchmultimodal_flava.safetensors`` holds a tiny TorchMultimodal FLAVAForPreTraining's
random weights, inputs and outputs, made by ``fixtures/make_torchmultimodal_fixture.py`` with
``torchmultimodal-nightly`` (which downloads weights when it builds its codebook, so it is not a
test dependency).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import flava_kit
from flava_kit.checkpoints import from_torchmultimodal, load_torchmultimodal_state_dict
from flava_kit.errors import CheckpointError

FIXTURE = load_file(Path(__file__).parent / "fixtures" / "torchmultimodal_flava.safetensors")
STATE = {k[len("state."):]: v for k, v in FIXTURE.items() if k.startswith("state.")}
INPUT = {k[len("input."):]: v for k, v in FIXTURE.items() if k.startswith("input.")}
OUTPUT = {k[len("output."):]: v for k, v in FIXTURE.items() if k.startswith("output.")}
TINY = [  # the fixture's sizes, on top of the TorchMultimodal preset
    "model.image_encoder={type: flava_vit, hidden_size: 32, num_layers: 2, num_heads: 4, intermediate_size: 40, image_size: 32, patch_size: 8}",
    "model.text_encoder={type: flava_text, vocab_size: 99, hidden_size: 32, num_layers: 2, num_heads: 4, intermediate_size: 40, max_position_embeddings: 16}",
    "model.fusion={type: flava_multimodal, hidden_size: 32, num_layers: 2, num_heads: 4, intermediate_size: 40}",
    "model.projection_dim=16",
    "model.codebook={type: dalle, hidden_size: 8, num_blocks_per_group: 1, vocab_size: 40, input_size: 32}",
    *(f"model.objectives.{name}.{key}={value}" for name, vocab in (("mim", 40), ("mmm_image", 40), ("mlm", 99), ("mmm_text", 99))
      for key, value in (("hidden_size", 32), ("vocab_size", vocab))),
    "model.objectives.itm.hidden_size=32",
]  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tmm") / "flava.pt"
    torch.save(STATE, path)
    return from_torchmultimodal(path, overrides=TINY).eval()


def test_every_key_maps_exactly_once(model):
    # strict loading would have raised on a missing, unexpected or mis-shaped key
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for k, v in STATE.items() if not k.endswith(".cls.bias") or "itm" in k)


def test_outputs_match_torchmultimodal(model):
    with torch.no_grad():
        masked = model.flava(pixel_values=INPUT["image"], input_ids=INPUT["text"], bool_masked_pos=INPUT["image_patches_mask"])
        plain = model.flava(pixel_values=INPUT["image"], input_ids=INPUT["text"], skip_multimodal_encoder=True)
        objectives = model.objectives
        got = {
            "image_embeddings": plain.image_embeddings,
            "image_masked_embeddings": masked.image_embeddings,
            "text_embeddings": plain.text_embeddings,
            "multimodal_embeddings": masked.multimodal_embeddings,
            "image_features": plain.image_features,
            "text_features": plain.text_features,
            "codebook_tokens": model.codebook.tokens(INPUT["codebook_image"]),
            "mlm_logits": objectives["mlm"].head(plain.text_embeddings),
            "mim_logits": objectives["mim"].head(masked.image_embeddings),
            "mmm_text_logits": objectives["mmm_text"].head(masked.multimodal_embeddings),
            "mmm_image_logits": objectives["mmm_image"].head(masked.multimodal_embeddings),
            "itm_logits": objectives["itm"].head(masked.multimodal_embeddings),
        }
    for name, expected in OUTPUT.items():
        if name.endswith("_features"):  # TorchMultimodal normalises inside its contrastive loss instead
            expected = torch.nn.functional.normalize(expected, dim=-1)
        assert got[name].shape == expected.shape, name
        assert (got[name] - expected).abs().max() < 1e-5, name
    assert model.flava.logit_scale.item() == STATE["loss.contrastive_loss.logit_scale"].item()


def test_torchmultimodal_preset_settings():
    data = flava_kit.load_recipe("flava_pretrain_tmm").data["model"]
    assert data["ignore_index"] == -1
    assert {data["objectives"][k]["layer_norm_eps"] for k in ("mim", "mlm", "mmm_image", "mmm_text")} == {1e-5}
    assert flava_kit.load_recipe("flava_pretrain").data["model"]["objectives"]["mim"]["layer_norm_eps"] == 1e-12


def test_missing_and_unexpected_keys_are_listed(model, tmp_path):
    state = dict(STATE)
    del state["loss.itm_loss.pooler.dense.bias"]
    state["loss.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_torchmultimodal_state_dict(model, state, "edited")
    assert "missing keys (1): loss.itm_loss.pooler.dense.bias" in str(info.value)
    assert "unexpected keys (1): loss.extra" in str(info.value)


def test_nested_and_safetensors_files_load(tmp_path):
    torch.save({"state_dict": STATE}, tmp_path / "nested.pt")
    save_file({k: v.clone() for k, v in STATE.items()}, tmp_path / "flat.safetensors")
    for name in ("nested.pt", "flat.safetensors"):
        assert from_torchmultimodal(tmp_path / name, overrides=TINY) is not None


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        from_torchmultimodal(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: cannot read the weights"):
        from_torchmultimodal(tmp_path / "junk.pt", overrides=TINY)
