"""Pretraining end to end: bit-exact resume, atomic and verified checkpoints, the CLI, evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flava_kit.cli import main
from flava_kit.errors import CheckpointError, RecipeError
from flava_kit.train.run import pretrain
from flava_kit.train.param_groups import parameter_groups
from flava_kit.train.schedule import warmup_cosine

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")


def last_weights(run: Path) -> dict:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(run / "checkpoints" / latest / "model.safetensors")


def test_resume_is_bit_exact(tmp_path):
    pretrain(TINY, run_dir=tmp_path / "whole")
    assert pretrain(TINY, run_dir=tmp_path / "cut", stop_after=3).step == 3  # interrupted after 3 of 6 steps
    pretrain(TINY, run_dir=tmp_path / "cut", resume=True)
    whole, cut = (tmp_path / "whole" / "losses.csv").read_text(), (tmp_path / "cut" / "losses.csv").read_text()
    assert len(whole.splitlines()) == 7 and whole == cut  # every loss of every step, to the last digit printed
    a, b = last_weights(tmp_path / "whole"), last_weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_holds_what_the_readme_says(tmp_path):
    run = pretrain(TINY, run_dir=tmp_path)
    assert {"losses.csv", "losses.png", "checkpoints", "tokenizer", "results.json", "eval"} <= {p.name for p in tmp_path.iterdir()}
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000003", "step-00000006"]
    with open(tmp_path / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["global_contrastive"] and r["itm"] for r in rows)  # paired batches run the paired objectives
    results = json.loads((tmp_path / "results.json").read_text())
    details = json.loads((tmp_path / results["eval"] / "results.json").read_text())["results"][tmp_path.name]
    assert details["zero_shot"]["details"]["images"] == 48 and details["zero_shot"]["details"]["chance"] == pytest.approx(1 / 12)
    for key in ("zero_shot_acc@5", "zero_shot_mean_per_class_recall", "linear_probe_accuracy", "retrieval_image_to_text_R@1",
                "retrieval_text_to_image_R@1", "shifted_zero_shot_accuracy"):  # fmt: skip
        assert 0.0 <= results[key] <= 1.0, key
    assert results["zero_shot_acc@5"] >= results["zero_shot_accuracy"]
    assert run.metrics == {k: v for k, v in results.items() if k not in ("step", "skipped_items", "wall_s", "eval")}
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="--resume: no checkpoint"):
        pretrain(TINY, run_dir=tmp_path, resume=True)


@pytest.mark.parametrize("damage", ["truncate_weights", "garbage_state", "dangling_pointer"])
def test_damaged_checkpoints_are_refused_with_the_file_named(tmp_path, damage):
    pretrain(TINY, run_dir=tmp_path, stop_after=3)
    checkpoint = tmp_path / "checkpoints" / "step-00000003"
    if damage == "truncate_weights":
        data = (checkpoint / "model.safetensors").read_bytes()
        (checkpoint / "model.safetensors").write_bytes(data[: len(data) // 3])
        message = r"model\.safetensors: corrupt, truncated or missing"
    elif damage == "garbage_state":
        (checkpoint / "trainer_state.pt").write_bytes(b"not a checkpoint")
        message = r"trainer_state\.pt: corrupt, truncated or missing"
    else:
        (tmp_path / "checkpoints" / "latest").write_text("step-00000099")
        message = "names step-00000099, which does not exist"
    with pytest.raises(CheckpointError, match=message):
        pretrain(TINY, run_dir=tmp_path, resume=True)


def test_an_interrupted_save_leaves_the_last_good_checkpoint(tmp_path):
    pretrain(TINY, run_dir=tmp_path, stop_after=3)
    (tmp_path / "checkpoints" / ".step-00000006.tmp").mkdir()  # a save that died half-way
    assert pretrain(TINY, run_dir=tmp_path, resume=True).step == 6


def test_no_weight_decay_on_norms_and_biases():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    decay, no_decay = parameter_groups(model, 0.1)
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


def test_warmup_then_cosine():
    factor = warmup_cosine(10, 110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0, abs=1e-9)


def test_pretrain_and_eval_from_the_cli(tmp_path, capsys):
    assert main(["pretrain", TINY, "train.steps=3", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out.split("\nstep 3 in")[0]
    assert "| zero_shot " in table and "| linear_probe " in table
    saved = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "tokenizer").iterdir()}
    assert main(["eval", str(tmp_path)]) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "tokenizer").iterdir()} == saved  # read, not rewritten
    assert capsys.readouterr().out.startswith(table)  # the same table the run printed at its end


def test_pretrain_recipe_problems_are_reported_before_training(tmp_path, capsys):
    assert main(["pretrain", TINY, "data.batch_sise=4", "train.stepz=1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data.batch_sise: unknown parameter of section 'data'" in err and "did you mean 'batch_size'" in err
    assert "train.stepz: unknown parameter of section 'train'" in err
    assert not (tmp_path / "losses.csv").exists()


def test_a_recipe_without_data_cannot_pretrain(tmp_path):
    with pytest.raises(RecipeError, match="data: pretraining needs a 'data' section"):
        pretrain("flava_tiny", run_dir=tmp_path)


def test_tokenizer_larger_than_the_text_vocabulary_is_named(tmp_path):
    with pytest.raises(RecipeError, match=r"data\.tokenizer: the tokenizer built from the synthetic vocabulary .* has 24 tokens, "
                                          r"(?s:.*)set model\.text_encoder\.vocab_size=24 or more"):
        pretrain(TINY, ["model.text_encoder.vocab_size=10"], run_dir=tmp_path)


@pytest.mark.parametrize("modality", ["image", "text", "multimodal"])
def test_finetuning_a_classifier_from_a_pretraining_run(tmp_path, modality):
    pretrain(TINY, run_dir=tmp_path / "pre")
    overrides = ["model.type=flava_classifier", f"model.modality={modality}", "model.num_classes=12", "data.task=classify", "data.sources.shapes.two_shapes=0",
                 f"train.init_from={tmp_path / 'pre'}", "train.steps=3",
                 "train.eval={tasks: {classify: {type: zero_shot_classification, data: {type: synthetic, split: held_out, size: 48, image_size: 32}}}}"]  # fmt: skip
    run = pretrain(TINY, overrides, run_dir=tmp_path / "fine")
    before = last_weights(tmp_path / "pre")
    assert run.model.flava.text_encoder.word_embeddings.weight.shape == before["flava.text_encoder.word_embeddings.weight"].shape
    assert 0.0 <= run.metrics["classify_accuracy"] <= 1.0 and set(run.metrics) == {"classify_accuracy", "classify_acc@5", "classify_mean_per_class_recall"}
    with open(tmp_path / "fine" / "losses.csv") as handle:
        assert all(row["classification"] for row in csv.DictReader(handle))


def test_init_from_copies_the_matching_weights(tmp_path):
    pretrain(TINY, run_dir=tmp_path / "pre")
    run = pretrain(TINY, ["model.type=flava_classifier", "model.num_classes=12", "data.task=classify", "data.sources.shapes.two_shapes=0", "train.eval=null",
                          f"train.init_from={tmp_path / 'pre'}", "train.lr=0"], run_dir=tmp_path / "fine")  # fmt: skip
    before, after = last_weights(tmp_path / "pre"), run.model.state_dict()
    assert torch.equal(after["flava.image_encoder.pos_embed"], before["flava.image_encoder.pos_embed"])  # lr 0: untouched


def test_classification_needs_labelled_items(tmp_path):
    from flava_kit.data.sources import DataError

    (tmp_path / "lines.txt").write_text("a red circle\n")
    with pytest.raises(DataError, match="need items with a label"):
        pretrain(TINY, ["model.type=flava_classifier", "data.task=classify", "~data.sources.shapes", f"data.sources.lines={{type: text_lines, path: {tmp_path / 'lines.txt'}}}"],
                 run_dir=tmp_path)  # fmt: skip


@pytest.mark.parametrize("option", ["train.precision=bf16", "train.precision=fp16", "train.activation_checkpointing=true", "data.workers=1", "train.accumulation=2"])
def test_training_options_run(tmp_path, option):
    run = pretrain(TINY, [option, "train.steps=2"], run_dir=tmp_path)
    assert run.step == 2 and torch.isfinite(torch.tensor(float((tmp_path / "losses.csv").read_text().splitlines()[-1].split(",")[2])))


@pytest.mark.parametrize("image_encoder", ["{type: flava_vit, hidden_size: 32, num_heads: 2, num_layers: 1, intermediate_size: 64, image_size: 32, patch_size: 8}",
                                           "{type: timm_vit, model_name: vit_tiny_patch16_224, image_size: 32, model_kwargs: {patch_size: 8, depth: 1, embed_dim: 32, num_heads: 2}}"])
def test_activation_checkpointing_reaches_every_encoder_and_fusion(image_encoder, tmp_path, monkeypatch):
    from torch.utils import checkpoint as torch_checkpoint

    calls = []
    real = torch_checkpoint.checkpoint
    monkeypatch.setattr(torch_checkpoint, "checkpoint", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    import flava_kit.layers.transformer as transformer

    monkeypatch.setattr(transformer, "checkpoint", torch_checkpoint.checkpoint)
    run = pretrain(TINY, [f"model.image_encoder={image_encoder}", "train.activation_checkpointing=true", "train.steps=1",
                          "train.eval=null"], run_dir=tmp_path)  # fmt: skip
    image = run.model.flava.image_encoder
    assert getattr(getattr(image, "vit", None), "grad_checkpointing", None) or image.encoder.gradient_checkpointing
    assert run.model.flava.fusion.encoder.gradient_checkpointing and calls


def test_validation_rejects_activation_checkpointing_a_part_cannot_do():
    with pytest.raises(RecipeError, match=r"train\.activation_checkpointing: model\.image_encoder \(encoder 'flava_kit_demo_plugin:patch_mlp'\) cannot checkpoint"):
        from flava_kit.recipe import load_recipe

        load_recipe(TINY, ["model.image_encoder={type: patch_mlp}", "train.activation_checkpointing=true"])


def test_the_same_seed_gives_bit_identical_runs_in_fresh_processes(tmp_path):
    """What a user runs twice: `flava-kit pretrain RECIPE data.seed=S`, each a fresh process. Same
    seed: the same losses.csv, byte for byte, the same weights and held-out figures; another seed
    differs. The run ends with its summary: results, wall time, where the files are."""
    import subprocess
    import sys

    cli = str(Path(sys.executable).with_name("flava-kit"))
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("other", 4)):
        done = subprocess.run([cli, "pretrain", TINY, f"data.seed={seed}", "--out", str(tmp_path / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = tmp_path / name
    assert "| zero_shot " in done.stdout and "accuracy ↑" in done.stdout and " min " in done.stdout and "losses.csv" in done.stdout
    (a, b, other) = ((runs[n] / "losses.csv").read_bytes() for n in ("a", "b", "other"))
    assert a == b and a != other
    wa, wb = last_weights(runs["a"]), last_weights(runs["b"])
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = (json.loads((runs[n] / "results.json").read_text()) for n in ("a", "b"))
    assert {k: v for k, v in ra.items() if k != "wall_s"} == {k: v for k, v in rb.items() if k != "wall_s"}
