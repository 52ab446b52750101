"""A model built from scratch is initialised as HF's FlavaForPreTraining is: per-tensor statistics agree."""

from __future__ import annotations

import math

import torch
from hf_reference import tiny_pretraining_config

import flava_kit
from flava_kit.checkpoints.hf import hf_names, recipe_from_hf_config


def test_from_scratch_statistics_match_hf():
    from transformers import FlavaForPreTraining

    config = tiny_pretraining_config()
    config.image_config.hidden_size = config.text_config.hidden_size = config.multimodal_config.hidden_size = config.hidden_size = 64
    config.image_config.intermediate_size = config.text_config.intermediate_size = config.multimodal_config.intermediate_size = 128
    torch.manual_seed(0)
    hf = FlavaForPreTraining(config).state_dict()
    torch.manual_seed(1)
    ours = flava_kit.build(recipe_from_hf_config(config, pretraining=True)).state_dict()
    compared = 0
    for key, tensor in ours.items():
        names = [n for n in hf_names(key) if n in hf]
        if not names or key == "flava.logit_scale":
            continue
        reference = torch.cat([hf[n].flatten().float() for n in names])
        mine = tensor.flatten().float()
        assert mine.numel() == reference.numel(), key
        if reference.std() == 0 or mine.std() == 0:  # constants: zeros, ones
            assert torch.equal(mine, reference), key
        else:
            n = mine.numel()
            assert abs(mine.mean() - reference.mean()) < 6 * reference.std() / math.sqrt(n) + 1e-6, key
            assert abs(mine.std() / reference.std() - 1) < 6 / math.sqrt(2 * n) + 0.02, key
        compared += 1
    assert compared > 100
    assert torch.allclose(ours["flava.logit_scale"], hf["flava.logit_scale"])


def test_token_init_std_draws_the_tokens_that_hf_zeroes(tmp_path):
    """Default: HF's zeros (the test above). ``token_init_std``: truncated normal within two stds,
    for [CLS], the mask token, the position embeddings and [CLS_M]; nothing else changes."""
    torch.manual_seed(0)
    plain = flava_kit.build("demo", ["model.image_encoder.token_init_std=0", "model.fusion.token_init_std=0"]).state_dict()
    torch.manual_seed(0)
    drawn = flava_kit.build("demo").state_dict()  # the demo recipe sets 0.02
    tokens = ["flava.image_encoder.cls_token", "flava.image_encoder.mask_token", "flava.image_encoder.pos_embed", "flava.fusion.cls_token"]
    for key in tokens:
        assert not plain[key].any(), key
        assert drawn[key].abs().max() <= 0.04 and abs(drawn[key].std().item() - 0.02) < 0.01, key
    assert all(plain[k].shape == drawn[k].shape for k in plain)
