"""Swapping parts: every encoder x fusion combination honours the contracts; the swap recipes run."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flava_kit
from flava_kit.cli import main
from flava_kit.errors import RecipeError

IMAGE_ENCODERS = ("flava_vit", "timm_vit", "patch_mlp")
TEXT_ENCODERS = ("flava_text", "hf_text")
FUSIONS = ("flava_multimodal", "cross_attention")


def image_node(kind: str, width: int, heads: int, patch: int, grid: int) -> dict:
    if kind == "flava_vit":
        return {"type": kind, "hidden_size": width, "num_layers": 1, "num_heads": heads, "intermediate_size": 2 * width,
                "image_size": patch * grid, "patch_size": patch}  # fmt: skip
    if kind == "timm_vit":
        return {"type": kind, "model_name": "vit_tiny_patch16_224", "image_size": patch * grid,
                "model_kwargs": {"patch_size": patch, "embed_dim": width, "depth": 1, "num_heads": heads}}  # fmt: skip
    return {"type": kind, "hidden_size": width, "image_size": patch * grid, "patch_size": patch}


def text_node(kind: str, width: int, heads: int, vocab: int) -> dict:
    if kind == "flava_text":
        return {"type": kind, "vocab_size": vocab, "hidden_size": width, "num_layers": 1, "num_heads": heads,
                "intermediate_size": 2 * width, "max_position_embeddings": 32}  # fmt: skip
    return {"type": kind, "model_type": "bert", "config": {"vocab_size": vocab, "hidden_size": width, "num_hidden_layers": 1,
            "num_attention_heads": heads, "intermediate_size": 2 * width, "max_position_embeddings": 32}}  # fmt: skip


@st.composite
def cases(draw):
    image_kind, text_kind, fusion_kind = draw(st.sampled_from(list(itertools.product(IMAGE_ENCODERS, TEXT_ENCODERS, FUSIONS))))
    heads = draw(st.sampled_from([1, 2]))
    widths = [heads * draw(st.sampled_from([4, 8])) for _ in range(3)]  # encoders and fusion may differ
    patch, grid = draw(st.sampled_from([4, 8])), draw(st.integers(1, 3))
    vocab = draw(st.integers(5, 30))
    recipe = {"model": {
        "type": "flava", "projection_dim": draw(st.integers(2, 8)),
        "image_encoder": image_node(image_kind, widths[0], heads, patch, grid),
        "text_encoder": text_node(text_kind, widths[1], heads, vocab),
        "fusion": {"type": fusion_kind, "hidden_size": widths[2], "num_layers": 1, "num_heads": heads, "intermediate_size": 8},
    }}  # fmt: skip
    batch, length = draw(st.integers(1, 3)), draw(st.integers(2, 10))
    lengths = torch.tensor(draw(st.lists(st.integers(1, length), min_size=batch, max_size=batch)))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    inputs = {
        "pixel_values": torch.randn(batch, 3, patch * grid, patch * grid, generator=generator),
        "input_ids": torch.randint(0, vocab, (batch, length), generator=generator),
        "attention_mask": (torch.arange(length)[None] < lengths[:, None]).long(),
        "bool_masked_pos": torch.rand(batch, grid * grid, generator=generator) < 0.5,
    }
    return recipe, inputs, (patch, grid, widths)


def pixels_changed_under_mask(inputs: dict, patch: int, grid: int) -> dict:
    mask = inputs["bool_masked_pos"].reshape(-1, grid, grid).repeat_interleave(patch, 1).repeat_interleave(patch, 2)[:, None]
    return dict(inputs, pixel_values=torch.where(mask, torch.randn_like(inputs["pixel_values"]) * 3, inputs["pixel_values"]))


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_every_combination_honours_the_contracts(case):
    recipe, inputs, (patch, grid, widths) = case
    model = flava_kit.build(recipe).eval()
    batch, length = inputs["input_ids"].shape
    with torch.no_grad():
        out = model(**inputs)
        masked_changed = model(**pixels_changed_under_mask(inputs, patch, grid))
        padding = inputs["attention_mask"] == 0
        pad_changed = model(**dict(inputs, input_ids=torch.where(padding, (inputs["input_ids"] + 1) % 5, inputs["input_ids"])))
    assert out.image_embeddings.shape == (batch, 1 + grid * grid, widths[0])
    assert out.text_embeddings.shape == (batch, length, widths[1])
    assert out.multimodal_embeddings.shape == (batch, 1 + 1 + grid * grid + length, widths[2])
    assert out.image_features.shape == out.text_features.shape == (batch, recipe["model"]["projection_dim"])
    for field in ("image_embeddings", "multimodal_embeddings", "image_features"):  # masked pixels are invisible
        assert torch.allclose(getattr(out, field), getattr(masked_changed, field), atol=1e-5), field
    real = ~padding
    assert torch.allclose(out.text_embeddings[real], pad_changed.text_embeddings[real], atol=1e-5)
    text_part = out.multimodal_embeddings[:, 2 + grid * grid :]
    assert torch.allclose(text_part[real], pad_changed.multimodal_embeddings[:, 2 + grid * grid :][real], atol=1e-5)
    assert torch.allclose(out.multimodal_embeddings[:, : 2 + grid * grid], pad_changed.multimodal_embeddings[:, : 2 + grid * grid], atol=1e-5)


@pytest.mark.parametrize("name", ["flava_timm_vit", "flava_hf_text", "flava_cross_attention"])
def test_swap_recipes_validate_build_and_run(name):
    model = flava_kit.build(name).eval()
    with torch.no_grad():
        out = model(**model.example_inputs(batch_size=1, text_length=8))
    assert out.multimodal_embeddings.shape == (1, 1 + 197 + 8, 768)


def test_swap_by_override_from_the_cli(capsys):
    code = main(["build", "recipes/flava_full.yaml", "model.image_encoder.type=timm_vit", "model.image_encoder.model_name=vit_small_patch16_224"])
    out = capsys.readouterr().out
    assert code == 0 and "image_encoder: timm_vit (encoder, 21.67 M parameters)" in out


def test_ls_encoder_lists_the_four_with_descriptions(capsys):
    main(["ls", "encoder"])
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for name, words in (("flava_vit", "FLAVA's ViT"), ("flava_text", "FLAVA's text"), ("timm_vit", "A timm ViT"), ("hf_text", "An HF transformers text encoder")):
        assert words in rows[name], name


def test_timm_adapter_matches_timm_itself():
    encoder = flava_kit.build({"model": {"type": "flava", "image_encoder": image_node("timm_vit", 16, 2, 8, 2),
                                         "text_encoder": text_node("flava_text", 8, 2, 10), "fusion": {"type": "flava_multimodal", "hidden_size": 8, "num_heads": 2, "num_layers": 1}}}).image_encoder.eval()  # fmt: skip
    pixels = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(encoder(pixels).last_hidden_state, encoder.vit.forward_features(pixels), atol=1e-6)


def test_hf_text_from_a_local_directory_gives_that_model(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)).eval()
    bert.save_pretrained(tmp_path)
    node = {"type": "hf_text", "path": str(tmp_path)}
    encoder = flava_kit.recipe.build_node(node, "encoder").eval()
    ids, mask = torch.randint(0, 40, (2, 6)), torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    with torch.no_grad():
        assert torch.allclose(encoder(ids, mask).last_hidden_state, bert(input_ids=ids, attention_mask=mask).last_hidden_state, atol=1e-6)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.image_encoder={type: timm_vit, model_name: vit_bsae_patch16_224}", r"model\.image_encoder: .*timm has no model 'vit_bsae_patch16_224'; did you mean vit_base_patch16_224"),
        ("model.image_encoder={type: timm_vit, model_name: resnet18}", r"model\.image_encoder: .*'resnet18' is not a VisionTransformer, which timm_vit takes"),
        ("model.image_encoder={type: timm_vit, model_name: vit_base_patch16_reg4_gap_256}", r"model\.image_encoder: .*has 4 prefix tokens; .* needs exactly one class token"),
        ("model.text_encoder={type: hf_text, path: /nonexistent/bert}", r"model\.text_encoder: .*'/nonexistent/bert': no such directory, and not an HF Hub id"),
    ],
)
def test_bad_swaps_are_named_by_validation(override, message):
    with pytest.raises(RecipeError, match=message):
        flava_kit.load_recipe("flava_tiny", [override])


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny").eval()
    inputs = model.example_inputs()
    compiled = torch.compile(model)
    with torch.no_grad():
        expected, got = model(**inputs), compiled(**inputs)
    for field in ("image_embeddings", "text_embeddings", "multimodal_embeddings", "image_features"):
        assert (getattr(expected, field) - getattr(got, field)).abs().max() < 1e-5, field
