"""Fine-tuning controls in ``train:`` through recipe files and the CLI: ``freeze`` (frozen tensors
unchanged to the bit, without optimizer state), ``lr_multipliers`` and ``layer_decay`` (the
optimizer's groups; timm's own grouping of a ``timm_vit``), ``lora`` (a merged export computes
what the adapted model computes), patterns that match nothing (validate errors at their path), the
shipped ``lit`` recipe, and resuming with all of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flava_kit.recipe import build
from tests.test_recipes_through_cli import cli

TINY = Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml"
TIMM_VIT = ("model.image_encoder={type: timm_vit, model_name: vit_tiny_patch16_224, image_size: 32, "
            "model_kwargs: {patch_size: 8, depth: 3, embed_dim: 32, num_heads: 2}}")  # fmt: skip
QUICK = ["train.eval=null", "train.warmup_steps=1"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip() / "model.safetensors")


def optimizer_state(run: Path) -> dict:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return torch.load(run / "checkpoints" / latest / "trainer_state.pt", weights_only=True)["optimizer"]


def pretrain(capsys, run: Path, *overrides: str, recipe: Path | str = TINY) -> None:
    code, printed = cli(capsys, "pretrain", str(recipe), *QUICK, *overrides, "--out", str(run))
    assert code == 0, printed


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A 2-step run of the tiny demo-like recipe: what the fine-tuning runs start from."""
    from flava_kit.train.run import pretrain as run_pretrain

    path = tmp_path_factory.mktemp("base")
    run_pretrain(str(TINY), ["train.steps=2", *QUICK], run_dir=path)
    return path


def test_frozen_tensors_are_unchanged_to_the_bit_and_have_no_optimizer_state(base_run, tmp_path, capsys):
    run = tmp_path / "frozen"
    pretrain(capsys, run, "train.steps=3", "train.lr=0.01", f"train.init_from={base_run}",
             "train.freeze=[flava.image_encoder, 'flava.text_encoder.encoder.layers.*']")  # fmt: skip
    before, after = weights(base_run), weights(run)
    frozen = [k for k in after if k.startswith(("flava.image_encoder.", "flava.text_encoder.encoder.layers."))]
    assert len(frozen) == 21 + 12 and all(torch.equal(before[k], after[k]) for k in frozen)
    moved = [k for k in after if k not in frozen and not torch.equal(before[k], after[k])]
    assert any(k.startswith("flava.text_encoder.word_embeddings") for k in moved) and any(k.startswith("flava.fusion.") for k in moved)
    state = optimizer_state(run)
    assert sum(len(group["params"]) for group in state["param_groups"]) == len(after) - len(frozen)
    shapes = {tuple(entry["exp_avg"].shape) for entry in state["state"].values()}
    assert (32, 3, 8, 8) not in shapes and (1, 17, 32) not in shapes  # only the image tower's patch and position embeddings have these
    assert (96, 32) in shapes  # the fusion's qkv still trains


def test_lr_multipliers_set_the_rate_of_each_group_the_last_match_winning(tmp_path, capsys):
    run = tmp_path / "run"
    pretrain(capsys, run, "train.steps=1", "train.lr=0.001",
             "train.lr_multipliers={flava.text_encoder: 0.1, 'flava.text_encoder.encoder.layers.0.*': 3.0, objectives: 2.0}")  # fmt: skip
    counts: dict[float, int] = {}
    for group in optimizer_state(run)["param_groups"]:
        counts[round(group["initial_lr"], 12)] = counts.get(round(group["initial_lr"], 12), 0) + len(group["params"])
    names = list(weights(run))
    text = [k for k in names if k.startswith("flava.text_encoder.")]
    layer0 = [k for k in text if k.startswith("flava.text_encoder.encoder.layers.0.")]
    objectives = [k for k in names if k.startswith("objectives.")]
    assert counts == {0.003: len(layer0), 0.0001: len(text) - len(layer0), 0.002: len(objectives),
                      0.001: len(names) - len(text) - len(objectives)}  # fmt: skip
    assert len(layer0) == 12 and len(objectives) == 28


def groups_by_names(groups: list[dict], module: torch.nn.Module) -> set[tuple]:
    """``{(parameter names, lr_scale, weight_decay)}`` of the groups' parameters that belong to ``module``."""
    names = {id(param): name for name, param in module.named_parameters()}
    found = set()
    for group in groups:
        mine = frozenset(names[id(p)] for p in group["params"] if id(p) in names)
        if mine:
            found.add((mine, group["lr_scale"], group["weight_decay"]))
    return found


def test_layer_decay_groups_a_timm_vit_as_timm_does(tmp_path, capsys):
    from timm.optim import param_groups_layer_decay

    from flava_kit.train.param_groups import parameter_groups

    recipe = tmp_path / "timm.yaml"
    recipe.write_text(f"recipe_version: 1\nextends: {TINY}\n")
    model = build(str(recipe), [TIMM_VIT])
    vit = model.flava.image_encoder.vit
    ours = parameter_groups(model, 0.05, lr=1e-3, layer_decay=0.6)
    timms = param_groups_layer_decay(vit, weight_decay=0.05, layer_decay=0.6)
    timm_sets = groups_by_names(timms, vit)
    assert groups_by_names(ours, vit) == timm_sets and len(timm_sets) == 8  # 4 layers (embeddings, 3 blocks) x decay / none
    assert all(group["lr"] == pytest.approx(1e-3 * group["lr_scale"]) for group in ours)
    scale = {name: group["lr_scale"] for group in ours for name, p in model.named_parameters() if any(p is q for q in group["params"])}
    assert scale["flava.image_encoder.mask_token"] == scale["flava.image_encoder.vit.cls_token"] == pytest.approx(0.6**3)
    assert scale["flava.image_projection.weight"] == scale["objectives.mim.head.decoder.weight"] == 1.0
    # The trainer's optimizer holds these groups, and a run with them resumes.
    run = tmp_path / "run"
    pretrain(capsys, run, TIMM_VIT, "train.steps=1", "train.lr=0.001", "train.layer_decay=0.6", recipe=recipe)
    saved = [(len(g["params"]), g["lr_scale"], g["weight_decay"], g["initial_lr"]) for g in optimizer_state(run)["param_groups"]]
    assert saved == [(len(g["params"]), g["lr_scale"], g["weight_decay"], g["lr"]) for g in ours]
    pretrain(capsys, run, TIMM_VIT, "train.steps=2", "train.lr=0.001", "train.layer_decay=0.6", "--resume", recipe=recipe)


def test_layer_decay_on_flava_encoders_counts_each_encoders_own_blocks(tmp_path):
    from flava_kit.train.param_groups import layer_scales

    model = build(str(TINY), ["model.image_encoder.num_layers=2", "model.fusion.num_layers=3"])
    scales = layer_scales(model, 0.5)
    expected = {
        "flava.image_encoder.cls_token": 0.25, "flava.image_encoder.mask_token": 0.25, "flava.image_encoder.pos_embed": 0.25,
        "flava.image_encoder.patch_embed.weight": 0.25, "flava.image_encoder.encoder.layers.0.attn.qkv.weight": 0.5,
        "flava.image_encoder.encoder.layers.1.mlp.fc2.bias": 1.0, "flava.image_encoder.encoder.norm.weight": 1.0,
        "flava.image_encoder.encoder.pooler.dense.weight": 1.0,
        "flava.text_encoder.word_embeddings.weight": 0.5, "flava.text_encoder.embed_norm.bias": 0.5,
        "flava.text_encoder.encoder.layers.0.norm1.weight": 1.0, "flava.text_encoder.encoder.pooler.dense.bias": 1.0,
        "flava.fusion.cls_token": 0.125, "flava.fusion.encoder.layers.0.attn.proj.weight": 0.25, "flava.fusion.encoder.layers.2.norm2.weight": 1.0,
    }  # fmt: skip
    assert {name: scales[name] for name in expected} == expected
    assert not any(name.startswith(("objectives.", "flava.image_projection", "flava.logit_scale")) for name in scales)


def hf_inputs(loaded) -> dict:
    """A batch of two shapes and their captions, as the run's processor and tokenizer make them."""
    from flava_kit.data.synthetic import SyntheticShapes

    shapes = SyntheticShapes(size=2, image_size=32)
    items = [shapes[0], shapes[1]]
    pixels = loaded.processor()([item["image"] for item in items])["pixel_values"]
    text = loaded.tokenizer([item["text"] for item in items], padding="max_length", max_length=loaded.text_length, return_tensors="pt")
    return {"pixel_values": pixels, "input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}


def test_a_lora_fine_tune_exports_merged_weights_that_compute_what_the_adapted_model_does(base_run, tmp_path, capsys):
    from transformers import FlavaModel as HFFlavaModel

    from flava_kit.checkpoints.loading import load_model
    from flava_kit.checkpoints.run_dir import load_weights
    from flava_kit.recipe import load_recipe
    from flava_kit.models.lora import add_adapters

    run = tmp_path / "lora"
    pretrain(capsys, run, "train.steps=3", "train.lr=0.02", f"train.init_from={base_run}",
             "train.lora={target_modules: ['flava.*.attn.qkv', 'flava.*.mlp.fc1'], rank: 4, alpha: 8, trainable: [objectives]}")  # fmt: skip
    saved, before = weights(run), weights(base_run)
    assert any(".lora_B.default." in k and torch.count_nonzero(v) for k, v in saved.items())  # the adapters learnt something
    base = {k.replace(".base_layer.", "."): v for k, v in saved.items() if ".lora_" not in k}
    assert base.keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in base.items() if k.startswith("flava."))  # peft froze the base
    assert not all(torch.equal(v, before[k]) for k, v in base.items() if k.startswith("objectives."))  # lora.trainable trained
    checkpoint = run / "checkpoints" / "step-00000003"
    adapted = build(load_recipe(checkpoint / "recipe.yaml"))
    add_adapters(adapted, load_recipe(checkpoint / "recipe.yaml").data["train"]["lora"])
    load_weights(checkpoint, adapted)
    adapted.eval()
    code, printed = cli(capsys, "convert", str(run), str(tmp_path / "exported"))
    assert code == 0, printed
    exported = HFFlavaModel.from_pretrained(tmp_path / "exported").eval()
    loaded = load_model(str(run))  # what flava-kit eval reads: merged
    inputs = hf_inputs(loaded)
    with torch.no_grad():
        want, got, merged = adapted.flava(**inputs), exported(**inputs), loaded.model.flava(**inputs)
    for field in ("image_embeddings", "text_embeddings", "multimodal_embeddings"):
        torch.testing.assert_close(getattr(got, field), getattr(want, field), atol=1e-5, rtol=0)
        torch.testing.assert_close(getattr(merged, field), getattr(want, field), atol=1e-5, rtol=0)
    assert not any(".lora_" in k or ".base_layer." in k for k in loaded.model.state_dict())
    eval_recipe = tmp_path / "eval.yaml"
    eval_recipe.write_text("recipe_version: 1\ntasks:\n  zero_shot: {type: zero_shot_classification, "
                           "data: {type: synthetic, split: held_out, size: 24, image_size: 32}}\n")
    code, printed = cli(capsys, "eval", str(run), str(eval_recipe), "--out", str(tmp_path / "eval"))
    assert code == 0 and "zero_shot" in printed, printed


@pytest.mark.parametrize("setting, path, close", [
    ("train.freeze=[flava.image_encodr.*]", "train.freeze.0", "flava.image_encoder.*"),
    ("train.lr_multipliers={flava.txt_encoder: 0.1}", "train.lr_multipliers.flava.txt_encoder", "flava.text_encoder"),
    ("train.lora={target_modules: ['flava.*.qkvv']}", "train.lora.target_modules.0", "flava.*.qkv"),
    ("train.freeze=[flava, objectives]", "train.freeze", "nothing would train"),
])  # fmt: skip
def test_a_pattern_that_matches_nothing_is_a_validate_error_at_its_path(setting, path, close, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"recipe_version: 1\nextends: {TINY}\n")
    for command in ("validate", "pretrain"):
        code, printed = cli(capsys, command, str(recipe), setting, *(["--out", str(tmp_path / "run")] if command == "pretrain" else []))
        assert code != 0 and f"{path}:" in printed and close in printed, printed
    assert not (tmp_path / "run" / "losses.csv").exists()


def test_the_lit_recipe_locks_the_image_tower(base_run, tmp_path, capsys):
    tiny = yaml.safe_load(TINY.read_text())
    model = {k: v for k, v in tiny["model"].items() if k in ("image_encoder", "text_encoder", "fusion", "projection_dim")}
    recipe = tmp_path / "lit_tiny.yaml"
    recipe.write_text(yaml.safe_dump({"recipe_version": 1, "extends": "lit", "model": model, "data": {
        "sources": tiny["data"]["sources"], "batch_size": 8, "image_masking": tiny["data"]["image_masking"]}}))
    run = tmp_path / "lit"
    pretrain(capsys, run, "train.steps=2", "train.lr=0.01", f"train.init_from={base_run}", recipe=recipe)
    before, after = weights(base_run), weights(run)
    tower = [k for k in after if k.startswith(("flava.image_encoder.", "flava.image_projection."))]
    assert len(tower) == 23 and all(torch.equal(before[k], after[k]) for k in tower)
    assert not torch.equal(before["flava.text_projection.weight"], after["flava.text_projection.weight"])
    assert not torch.equal(before["flava.logit_scale"], after["flava.logit_scale"])
    columns = (run / "losses.csv").read_text().splitlines()[0].split(",")
    assert "global_contrastive" in columns and "itm" not in columns and "mlm" not in columns
    assert sum(len(g["params"]) for g in optimizer_state(run)["param_groups"]) == len(after) - len(tower)


@pytest.mark.parametrize("controls", [
    ["train.freeze=[flava.image_encoder.pos_embed]", "train.lr_multipliers={objectives: 2.0}", "train.layer_decay=0.7"],
    ["train.lora={target_modules: ['flava.*.attn.*'], rank: 2, dropout: 0.1}"],
], ids=["freeze_multipliers_layer_decay", "lora"])  # fmt: skip
def test_a_run_with_fine_tuning_controls_resumes_exactly(controls, tmp_path):
    from flava_kit.train.run import pretrain as run_pretrain

    overrides = ["train.steps=4", "train.checkpoint_every=2", *QUICK, *controls]
    run_pretrain(str(TINY), overrides, run_dir=tmp_path / "whole")
    run_pretrain(str(TINY), overrides, run_dir=tmp_path / "cut", stop_after=2)
    run_pretrain(str(TINY), overrides, run_dir=tmp_path / "cut", resume=True)
    assert (tmp_path / "whole" / "losses.csv").read_text() == (tmp_path / "cut" / "losses.csv").read_text()
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
