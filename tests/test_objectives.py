"""Objectives as open components: free names and weights, needs, layouts, SigLIP, pixel MIM, validation."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import flava_kit
from flava_kit.errors import RecipeError
from flava_kit.losses import PixelMIM, SigmoidContrastiveLoss

PRETRAIN = ["model.type=flava_pretraining", "model.codebook={type: color_palette, input_size: 32, grid: 4}",
            "model.image_encoder.image_size=32", "model.image_encoder.patch_size=8"]  # fmt: skip
TINY_RUN = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")


def model_with(objectives: str, extra=()):
    torch.manual_seed(0)
    return flava_kit.build("flava_tiny", [*PRETRAIN, f"model.objectives={objectives}", *extra]).train()


class Calls:
    """Counts calls of a module's forward (a hook) or of a plain object's ``tokens``."""

    def __init__(self, part):
        self.count = 0
        if isinstance(part, torch.nn.Module):
            part.register_forward_hook(lambda *_: setattr(self, "count", self.count + 1))
        else:
            tokens = part.tokens
            part.tokens = lambda *args: (setattr(self, "count", self.count + 1), tokens(*args))[1]


def test_names_are_free_and_weights_multiply():
    model = model_with("{match: {type: itm, hidden_size: 64}, match_twice: {type: itm, hidden_size: 64, weight: 2.0}}")
    model.objectives["match_twice"].load_state_dict(model.objectives["match"].state_dict())
    out = model(**model.example_inputs(batch_size=4))
    assert set(out.losses) == {"match", "match_twice"} and model.loss_names == ["match", "match_twice"]
    assert torch.allclose(out.losses["match_twice"], 2 * out.losses["match"])
    assert torch.allclose(out.loss, out.losses["match"] + out.losses["match_twice"])
    assert out.logits["match"].shape == (4, 2) and "match/accuracy" in out.metrics


def test_the_model_runs_only_what_objectives_need():
    model = model_with("{siglip: {type: sigmoid_contrastive, inputs: masked}, text: {type: mlm, hidden_size: 64, vocab_size: 1000}}")
    fusion, image, codebook = Calls(model.flava.fusion), Calls(model.flava.image_encoder), Calls(model.codebook)
    out = model(**model.example_inputs(batch_size=3))
    assert set(out.losses) == {"siglip"}  # mlm does not apply to a paired batch
    assert (fusion.count, image.count, codebook.count) == (0, 1, 0)  # no fusion, one encoder pass, no codebook
    assert out.masked.multimodal_embeddings is None


def test_hf_semantics_run_the_unmasked_pass_and_the_masked_option_skips_it():
    default = model_with("{c: {type: global_contrastive}}")
    calls = Calls(default.flava.image_encoder)
    default(**default.example_inputs())
    assert calls.count == 2  # masked pass, then the unmasked one the loss compares
    masked = model_with("{c: {type: global_contrastive, inputs: masked}}")
    calls = Calls(masked.flava.image_encoder)
    out = masked(**masked.example_inputs())
    assert calls.count == 1 and out.unmasked is None


@pytest.mark.parametrize("fusion", ["flava_multimodal", "cross_attention"])
def test_fusions_declare_where_each_part_sits(fusion):
    model = model_with("{t: {type: mmm_text, hidden_size: 64, vocab_size: 1000}}", [f"model.fusion.type={fusion}"])
    inputs = model.example_inputs(batch_size=2, text_length=7)
    context = model.context(inputs)
    layout = context.layout
    patches = model.flava.image_encoder.num_patches
    assert (layout.cls_m, layout.image_cls) == (0, 1)
    assert context.fused("image_patches").shape[1] == patches and context.fused("text").shape[1] == 7
    assert layout.text.stop == context.masked.multimodal_embeddings.shape[1]


def test_sigmoid_loss_is_siglips_formula():
    torch.manual_seed(0)
    loss = SigmoidContrastiveLoss()
    assert math.isclose(loss.logit_scale.exp().item(), 10.0, rel_tol=1e-6) and loss.logit_bias.item() == -10.0
    loss = SigmoidContrastiveLoss(temperature_init=2.0, bias_init=-0.5, weight=0.5)
    images, texts = F.normalize(torch.randn(5, 4), dim=-1), F.normalize(torch.randn(5, 4), dim=-1)
    expected = 0.0
    for i in range(5):
        for j in range(5):
            z = 1.0 if i == j else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (2.0 * float(images[i] @ texts[j]) - 0.5))))
    got = loss.score(images, texts).loss
    assert math.isclose(got.item(), 0.5 * expected / 5, rel_tol=1e-5)


def test_pixel_mim_regresses_masked_patches_and_needs_no_codebook():
    mim = PixelMIM(hidden_size=8, patch_size=2, num_channels=1, normalize_targets=True)
    pixels = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = mim.targets(pixels)
    assert patches.shape == (1, 4, 4)  # a 2x2 grid of 2x2 patches
    assert torch.allclose(patches.mean(-1), torch.zeros(1, 4), atol=1e-5)  # each patch normalised on its own
    raw = PixelMIM(hidden_size=8, patch_size=2, num_channels=1, normalize_targets=False).targets(pixels)
    assert raw[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # the top-right patch, row-major like the encoder

    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny", ["model.type=flava_pretraining", "model.image_encoder.image_size=32", "model.image_encoder.patch_size=8",
                                           "model.objectives={pixels: {type: pixel_mim, hidden_size: 64, patch_size: 8}}"])  # fmt: skip
    assert model.codebook is None
    inputs = model.example_inputs()
    out = model(**inputs)
    out.loss.backward()
    assert out.loss > 0 and model.flava.image_encoder.mask_token.grad.abs().sum() > 0
    nothing_masked = model(**{**inputs, "bool_masked_pos": torch.zeros_like(inputs["bool_masked_pos"])})
    assert nothing_masked.losses["pixels"].item() == 0.0


@pytest.mark.parametrize(
    "overrides,path,detail",
    [
        (["model.objectives={c: {type: global_contrastve}}"], "model.objectives.c.type", "Did you mean 'global_contrastive'"),
        (["model.objectives={c: {type: global_contrastive, weight: -1}}"], "model.objectives.c.weight", "greater than or equal to 0"),
        (["model.objectives={image: {type: mmm_image, hidden_size: 64, vocab_size: 64}}"], "model",
         "model.objectives.image needs codebook targets, but model.codebook is not set"),
    ],
)
def test_validation_catches_bad_objectives_with_the_recipe_path(overrides, path, detail):
    with pytest.raises(RecipeError) as info:
        flava_kit.load_recipe("flava_tiny", ["model.type=flava_pretraining", "model.image_encoder.image_size=32", *overrides])
    assert f"  - {path}:" in str(info.value) and detail in str(info.value)


def test_describe_shows_the_sigmoid_objectives_parameters(capsys):
    from flava_kit.cli import main

    assert main(["describe", "loss", "sigmoid_contrastive"]) == 0
    out = capsys.readouterr().out
    for text in ("temperature_init: float  (default 10.0)", "bias_init: float  (default -10.0)", "inputs: Literal['unmasked', 'masked']"):
        assert text in out


def test_a_plugin_objective_trains_from_the_cli_beside_built_ins(tmp_path):
    exe = Path(sys.executable).parent / "flava-kit"
    objectives = ("model.objectives={align: {type: feature_l2, weight: 0.5}, itm: {type: itm, hidden_size: 32}, "
                  "siglip: {type: sigmoid_contrastive, inputs: masked}}")  # fmt: skip
    command = [str(exe), "pretrain", TINY_RUN, objectives, "train.steps=3", "train.eval=null", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {"align", "itm", "siglip"} <= set(rows[0])
    assert all(float(row["align"]) > 0 for row in rows)


def test_the_codebook_free_demo_recipe_validates_and_runs_no_codebook():
    recipe = flava_kit.load_recipe("demo_siglip_pixel")
    assert recipe.data["model"]["codebook"] is None
    assert {node["type"] for node in recipe.data["model"]["objectives"].values()} == {"sigmoid_contrastive", "pixel_mim", "mlm"}


def test_the_documented_objective_example_registers_and_trains(scratch_registry):
    guide = (Path(__file__).parent.parent / "docs" / "writing-components.md").read_text()
    section = guide[guide.index("## An objective") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]
    exec(compile(code, "writing-components.md", "exec"), {"__name__": "docs_example"})
    model = model_with("{align: {type: text_to_image_cosine, weight: 0.1}, itm: {type: itm, hidden_size: 64}}")
    out = model(**model.example_inputs(batch_size=3))
    assert set(out.losses) == {"align", "itm"} and "align/cosine" in out.metrics
    out.loss.backward()


def test_sigmoid_same_text_positive_scores_repeated_captions_as_true_pairs():
    from flava_kit.losses.sigmoid_contrastive import SigmoidContrastiveLoss

    loss = SigmoidContrastiveLoss(same_text_positive=True, temperature_init=1.0, bias_init=0.0)
    generator = torch.Generator().manual_seed(0)
    images, texts = (F.normalize(torch.randn(3, 4, generator=generator), dim=-1) for _ in range(2))
    ids = torch.tensor([[2, 7, 3], [2, 7, 3], [2, 8, 3]])  # rows 0 and 1 have one caption
    logits = images @ texts.T
    for token_ids, signs in ((ids, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]]), (None, [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]])):
        expected = -F.logsigmoid(torch.tensor(signs, dtype=torch.float) * logits).sum() / 3
        assert torch.allclose(loss.score(images, texts, token_ids=token_ids).loss, expected)
