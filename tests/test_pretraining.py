"""FLAVA pretraining against HF's FlavaForPreTraining: losses, gradients, checkpoints, robustness."""

from __future__ import annotations

import pytest
import torch
from hf_reference import pretraining_batch, random_hf_pretraining, tiny_pretraining_config

import flava_kit
from flava_kit.checkpoints.hf import hf_names
from flava_kit.errors import RecipeError

REL = 1e-5
IMAGE_ONLY = ("pixel_values", "bool_masked_pos", "codebook_pixel_values")
TEXT_ONLY = ("input_ids", "input_ids_masked", "attention_mask", "mlm_labels")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    config = tiny_pretraining_config()
    hf = random_hf_pretraining(config)
    path = tmp_path_factory.mktemp("hf_pretraining")
    hf.save_pretrained(path)
    return config, hf, flava_kit.from_pretrained(path).eval(), path


def losses_of(hf, ours, inputs):
    with torch.no_grad():
        expected = hf(**{k: v.clone() for k, v in inputs.items()}).loss_info  # HF edits mim_labels in place
        got = ours(**inputs).losses
    return {k: v for k, v in expected.items() if v is not None}, got


@pytest.mark.parametrize("which,names", [
    ("paired", {"itm", "global_contrastive", "mmm_image", "mmm_text"}),
    ("image", {"mim"}),
    ("text", {"mlm"}),
])  # fmt: skip
def test_losses_match_hf(pair, which, names):
    config, hf, ours, _ = pair
    inputs = pretraining_batch(config)
    assert (inputs["itm_labels"] == 0).any()  # ITM negatives in the batch
    if which != "paired":
        inputs = {k: v for k, v in inputs.items() if k in (IMAGE_ONLY if which == "image" else TEXT_ONLY)}
    expected, got = losses_of(hf, ours, inputs)
    assert set(got) == set(expected) == names
    for name in names:
        assert abs(got[name].item() - expected[name].item()) <= REL * abs(expected[name].item()), name


def test_loss_with_given_mim_labels_and_no_codebook_pixels(pair):
    config, hf, ours, _ = pair
    inputs = {k: v for k, v in pretraining_batch(config).items() if k in IMAGE_ONLY}
    inputs["mim_labels"] = ours.codebook.tokens(inputs.pop("codebook_pixel_values"))
    expected, got = losses_of(hf, ours, inputs)
    assert abs(got["mim"].item() - expected["mim"].item()) <= REL * expected["mim"].item()


def test_gradients_match_hf(pair):
    config, hf, ours, _ = pair
    inputs = pretraining_batch(config)
    hf.zero_grad(), ours.zero_grad()
    hf(**{k: v.clone() for k, v in inputs.items()}).loss.backward()
    ours(**inputs).loss.backward()
    hf_grads = {n: p.grad for n, p in hf.named_parameters()}
    for name in list(hf_grads):  # HF lists each tied head bias once, under '<head>.bias'
        if name.endswith("_head.bias"):
            hf_grads[name.replace(".bias", ".decoder.bias")] = hf_grads[name]
    compared = 0
    for name, param in ours.named_parameters():
        if param.grad is None:
            continue
        names = hf_names(name)
        expected = torch.cat([hf_grads[n] for n in names]) if len(names) > 1 else hf_grads[names[0]]
        assert torch.allclose(param.grad, expected, rtol=1e-4, atol=1e-6), name
        compared += 1
    assert compared > 100


def test_round_trip_to_hf_is_identical(pair, tmp_path):
    from transformers import FlavaForPreTraining

    _, hf, ours, _ = pair
    flava_kit.save_pretrained(ours, tmp_path)
    again = FlavaForPreTraining.from_pretrained(tmp_path)
    expected, got = hf.state_dict(), again.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_flava_part_only(pair):
    config, hf, _, path = pair
    flava = flava_kit.from_pretrained(path, model="flava").eval()
    assert {k.split(".")[0] for k in flava.skipped_keys} == {"image_codebook", "mim_head", "mlm_head", "itm_head", "mmm_image_head", "mmm_text_head"}
    inputs = {k: v for k, v in pretraining_batch(config).items() if k in ("pixel_values", "input_ids", "attention_mask")}
    with torch.no_grad():
        assert torch.allclose(hf.flava(**inputs).multimodal_embeddings, flava(**inputs).multimodal_embeddings, atol=1e-5)


def test_nothing_masked_contributes_zero_not_nan(pair):
    config, _, ours, _ = pair
    inputs = pretraining_batch(config)
    inputs["bool_masked_pos"][:] = False
    inputs["mlm_labels"][:] = -100
    out = ours(**inputs)
    assert out.losses["mmm_image"].item() == 0.0 and out.losses["mmm_text"].item() == 0.0
    assert torch.isfinite(out.loss)
    out.loss.backward()  # still differentiable


def test_batch_without_positive_pairs_keeps_every_row_as_hf(pair):
    config, hf, ours, _ = pair
    inputs = pretraining_batch(config)
    inputs["itm_labels"][:] = 0
    expected, got = losses_of(hf, ours, inputs)
    for name in got:
        assert abs(got[name].item() - expected[name].item()) <= REL * abs(expected[name].item()), name


def test_callers_labels_are_not_modified(pair):
    config, _, ours, _ = pair
    inputs = {k: v for k, v in pretraining_batch(config).items() if k in IMAGE_ONLY}
    labels = ours.codebook.tokens(inputs.pop("codebook_pixel_values"))
    before = labels.clone()
    ours(**inputs, mim_labels=labels)
    assert torch.equal(labels, before)


def test_single_modality_batches_encode_once(pair, monkeypatch):
    config, _, ours, _ = pair
    calls = []
    for part in ("image_encoder", "text_encoder", "fusion"):
        monkeypatch.setattr(getattr(ours.flava, part), "forward", _counting(getattr(ours.flava, part).forward, calls, part))
    inputs = pretraining_batch(config)
    ours(**{k: v for k, v in inputs.items() if k in IMAGE_ONLY})
    assert calls == ["image_encoder"]  # HF runs its image encoder twice here
    calls.clear()
    ours(**inputs)
    assert sorted(calls) == ["fusion", "image_encoder", "image_encoder", "text_encoder", "text_encoder"]


def _counting(forward, calls, name):
    def wrapped(*args, **kwargs):
        calls.append(name)
        return forward(*args, **kwargs)

    return wrapped


def test_objectives_that_are_left_out_do_not_run():
    model = flava_kit.build("flava_tiny", ["model.type=flava_pretraining", "model.codebook={type: color_palette, input_size: 32, grid: 4}",
                                           "model.objectives={itm: {type: itm, hidden_size: 64}}"])  # fmt: skip
    out = model(**model.example_inputs())
    assert set(out.losses) == {"itm"} and out.loss.item() == out.losses["itm"].item()


def test_default_objectives_fit_any_parts():
    model = flava_kit.build("flava_tiny", ["model.type=flava_pretraining", "model.codebook={type: color_palette, input_size: 64, grid: 4}"])
    out = model(**model.example_inputs())
    assert set(out.losses) == {"itm", "global_contrastive", "mmm_image", "mmm_text"}
    assert model.objectives["mim"].vocab_size == 512  # sized to the codebook


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.codebook={type: dalle, input_size: 112}"], r"codebook grid \(14, 14\) != image_encoder grid \(4, 4\)"),
        (["model.objectives={mlm: {type: mlm, hidden_size: 32, vocab_size: 1000}}"], r"objectives\.mlm\.hidden_size 32 != text_encoder\.hidden_size 64"),
        (["model.objectives={text: {type: mmm_text, hidden_size: 64, vocab_size: 999}}"], r"objectives\.text\.vocab_size 999 != text_encoder\.vocab_size 1000"),
        (["model.objectives={pixels: {type: pixel_mim, hidden_size: 64, patch_size: 4}}"], r"objectives\.pixels\.patch_size 4 != the image encoder's patch side 16"),
        (["model.objectives={itm: {type: global_contrastive}, mlm: {type: mlm, hidden_size: 64, vocab_size: 1000, ignore_index: -1}}"],
         r"objectives\.mlm\.ignore_index -1 != ignore_index -100"),
    ],
)
def test_parts_that_do_not_fit_are_named_by_validation(overrides, message):
    with pytest.raises(RecipeError, match=rf"model: building model 'flava_pretraining' failed: .*{message}"):
        flava_kit.load_recipe("flava_tiny", ["model.type=flava_pretraining", *overrides])


def test_logit_scale_is_clamped_in_training(pair):
    config, _, ours, _ = pair
    with torch.no_grad():
        ours.flava.logit_scale.fill_(9.0)
    ours.train()
    ours(**pretraining_batch(config))
    ours.eval()
    assert ours.flava.logit_scale.item() == pytest.approx(4.6052, abs=1e-4)
