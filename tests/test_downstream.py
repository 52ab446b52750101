"""FLAVA's downstream tasks: the VQA targets and loss, sentence pairs, model selection, and each
shipped ``finetune_*`` recipe fine-tuned and evaluated through the ``flava-kit`` CLI, as a user would."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from flava_kit.data.answers import answer_credit, answer_scores, top_answers
from flava_kit.models.flava_vqa import soft_score_bce
from flava_kit.recipe import load_recipe
from tests.test_recipes_through_cli import cli


def test_vqa_soft_scores_and_credit_by_hand():
    ten = ["yes"] * 2 + ["no"] * 7 + ["maybe"]  # maybe is outside the vocabulary
    scores = answer_scores([ten, ["no"] * 3], ["yes", "no"])
    assert torch.allclose(scores, torch.tensor([[2 / 3, 1.0], [0.0, 1.0]]))
    assert answer_credit("yes", ten) == pytest.approx(2 / 3) and answer_credit("maybe", ten) == pytest.approx(1 / 3)
    assert answer_credit("no", ten) == 1.0 and answer_credit("blue", ten) == 0.0
    assert top_answers([["a", "b", "b"], ["c", "b", "a"]], 2) == ["b", "a"]


def test_soft_score_bce_by_hand():
    logits, scores = torch.tensor([[0.0, 2.0], [-1.0, 1.0]]), torch.tensor([[1.0, 2 / 3], [0.0, 1.0]])

    def bce(x, y):  # -(y log s(x) + (1 - y) log(1 - s(x)))
        s = 1 / (1 + math.exp(-x))
        return -(y * math.log(s) + (1 - y) * math.log(1 - s))

    by_hand = (bce(0, 1) + bce(2, 2 / 3) + bce(-1, 0) + bce(1, 1)) / 2  # summed over answers, averaged over questions
    assert float(soft_score_bce(logits, scores)) == pytest.approx(by_hand, rel=1e-6)


def test_a_sentence_pair_batch_has_bert_token_type_ids():
    from flava_kit.data.batches import PretrainingBatches
    from flava_kit.data.tokenizer import run_tokenizer

    tokenizer = run_tokenizer(None)
    batches = PretrainingBatches({"p": object()}, batch_size=1, processor=None, tokenizer=tokenizer, text_length=12,
                                 image_masking=None, text_masking=None, task="classify")  # fmt: skip
    batch = batches.classification_batch([{"key": "0", "text": "a red circle", "text_pair": "the red circle", "label": 0}])
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens[:9] == ["[CLS]", "a", "red", "circle", "[SEP]", "the", "red", "circle", "[SEP]"]
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 4 + [0] * 3  # padding: type 0, attention 0
    assert batch["attention_mask"][0].tolist() == [1] * 9 + [0] * 3


TINY_MODEL = """
model:
  image_encoder: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, image_size: 32, patch_size: 8}
  text_encoder: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}
  fusion: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}
  projection_dim: 16
"""

# recipe -> (its training source's name, a small source node for a split, the selection's task node, its metric, the eval metric)
DOWNSTREAM = {
    "finetune_text_pair": ("pairs", "{type: shapes_task, task: text_pair, size: SIZE, split: SPLIT}", "classification", "val_accuracy",
                           "final_macro_f1"),
    "finetune_multimodal_classification": ("pairs", "{type: shapes_task, task: image_text_match, size: SIZE, split: SPLIT, image_size: 32}",
                                           "classification", "val_roc_auc", "final_roc_auc"),
    "finetune_vqa": ("questions", "{type: shapes_task, task: vqa, size: SIZE, split: SPLIT, image_size: 32}", "vqa", "val_vqa_accuracy",
                     "final_vqa_accuracy"),
    "finetune_retrieval": ("shapes", "{type: synthetic, size: SIZE, image_size: 32, split: SPLIT_SYNTHETIC}", "retrieval",
                           "val_text_to_image_R@1", "final_reranked_text_to_image_R@1"),
}  # fmt: skip


def tiny_downstream(name: str, tmp_path: Path) -> str:
    """The shipped recipe ``name`` with a tiny model, small data, selection every 2 steps and a small final evaluation."""
    source, node, task, metric, _ = DOWNSTREAM[name]

    def split(which: str, size: int) -> str:
        return node.replace("SIZE", str(size)).replace("SPLIT_SYNTHETIC", "train" if which == "train" else "held_out").replace("SPLIT", which)

    extra = {"finetune_retrieval": "  objectives: {itm: {hidden_size: 32}}\n", "finetune_vqa": "  max_answers: 6\n"}.get(name, "")
    retrieval = ", ks: [1, 3], rerank: 3" if task == "retrieval" else ""
    text = (f"recipe_version: 1\nextends: {name}\n{TINY_MODEL}{extra}"
            f"data:\n  sources: {{{source}: {split('train', 64)}}}\n  batch_size: 8\n"
            "  image_masking: {type: block, num_masking_patches: 6, min_block_patches: 2}\n"
            f"train:\n  steps: 4\n  warmup_steps: 1\n  checkpoint_every: 4\n"
            f"  select: {{eval: {{tasks: {{val: {{type: {task}, data: {split('validation', 24)}{retrieval}}}}}}}, metric: '{metric}', every: 2}}\n"
            f"  eval: {{tasks: {{final: {{type: {task}, data: {split('held_out', 24)}{retrieval}}}}}}}\n")  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", list(DOWNSTREAM))
def test_each_downstream_recipe_fine_tunes_from_a_pretraining_run_and_evaluates_through_the_cli(name, run_dir, tmp_path, capsys):
    recipe = tiny_downstream(name, tmp_path)
    code, out = cli(capsys, "validate", recipe)
    assert code == 0, out
    run = tmp_path / "run"
    code, out = cli(capsys, "pretrain", recipe, f"train.init_from={run_dir}", "--out", str(run))
    assert code == 0, out
    assert f"init_from {run_dir}" in out
    metric = DOWNSTREAM[name][4]
    summary = json.loads((run / "results.json").read_text())
    assert 0.0 <= summary[metric] <= 1.0 and summary["selected"]["step"] in (2, 4)
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()
    rows = (run / "validation.csv").read_text().splitlines()
    assert rows[0].startswith(f"step,{DOWNSTREAM[name][3]}") and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    code, out = cli(capsys, "eval", str(run), "--out", str(tmp_path / "again"))  # the selected checkpoint, by the same runner
    assert code == 0, out
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["metrics"]["run"][metric] == pytest.approx(summary[metric])
    if name == "finetune_text_pair":  # per checkpoint: one column each, the selected one equal to the run's figure
        (tmp_path / "final.yaml").write_text(yaml.safe_dump({"recipe_version": 1, "tasks": load_recipe(recipe).data["train"]["eval"]["tasks"]}))
        checkpoints = [str(run / "checkpoints" / "best"), str(run / "checkpoints" / "step-00000004")]
        code, out = cli(capsys, "eval", *checkpoints, "--recipe", str(tmp_path / "final.yaml"), "--out", str(tmp_path / "each"))
        assert code == 0, out
        table = json.loads((tmp_path / "each" / "results.json").read_text())["metrics"]
        assert set(table) == {"best", "step-00000004"} and table["best"][metric] == pytest.approx(summary[metric])
    if name == "finetune_vqa":  # the answer vocabulary came from the training data, and travels with the model
        answers = (run / "answers.txt").read_text().split()
        assert len(answers) == 6 and set(answers) <= {"yes", "no", "red", "green", "blue", "yellow", "circle", "square", "triangle"}


def test_model_selection_keeps_the_best_checkpoint_and_stops_after_patience(tmp_path):
    from flava_kit.train.config import ModelSelection
    from flava_kit.train.selection import Selector

    def checkpoint(step: int) -> Path:
        path = tmp_path / "checkpoints" / f"step-{step:08d}"
        path.mkdir(parents=True)
        (path / "model.safetensors").write_text(f"weights of {step}")
        (path / "recipe.yaml").write_text("model: {}")
        return path

    scripted = {2: 0.5, 4: 0.7, 6: 0.6, 8: 0.65, 10: 0.1}  # the metric each step's checkpoint gets

    def evaluate(path: Path) -> dict:
        value = scripted[int(path.name.split("-")[1])]
        return {"results": {"m": {"val": {"metrics": {"accuracy": value, "loss": 1 - value}, "lower_is_better": ["loss"]}}},
                "metrics": {"m": {"val_accuracy": value, "val_loss": 1 - value}}}  # fmt: skip

    selector = Selector(ModelSelection(eval="x", metric="val_accuracy", every=2, patience=2), tmp_path, evaluate)
    stops = [selector.update(step, checkpoint(step))[1] for step in (2, 4, 6, 8)]
    assert stops == [False, False, False, True]  # two evaluations in a row (6, 8) without beating step 4
    best = tmp_path / "checkpoints" / "best"
    assert (best / "model.safetensors").read_text() == "weights of 4"
    assert json.loads((best / "selection.json").read_text())["best_step"] == 4

    resumed = Selector(ModelSelection(eval="x", metric="val_accuracy", every=2, patience=2), tmp_path, evaluate)
    resumed.restore(6)  # resumed from step 6: the evaluation of step 8 is forgotten, the best is still step 4
    assert resumed.state["history"] == [[2, 0.5], [4, 0.7], [6, 0.6]] and resumed.state["best_step"] == 4

    lower = Selector(ModelSelection(eval="x", metric="val_loss", every=2), tmp_path / "other", evaluate)
    for step in (2, 4, 6):
        lower.update(step, tmp_path / "checkpoints" / f"step-{step:08d}")
    assert lower.state["best_step"] == 4  # the task says loss is lower-is-better: 0.3 at step 4
    with pytest.raises(Exception, match="reports no 'val_f1'; it reports val_accuracy, val_loss"):
        Selector(ModelSelection(eval="x", metric="val_f1", every=2), tmp_path / "third", evaluate).update(2, checkpoint(10))


def test_fine_tuning_starts_from_an_hf_flava_directory(run_dir, tmp_path, capsys):
    """``train.init_from`` takes an HF FLAVA directory (its FlavaModel under our ``flava.`` names): only the new head starts fresh."""
    from flava_kit import build, to_recipe
    from flava_kit.checkpoints import save_pretrained
    from flava_kit.checkpoints.loading import load_model
    from flava_kit.train.checkpoint import load_matching_weights

    loaded = load_model(str(run_dir))
    node = to_recipe(loaded.model)["model"]
    flava = build({"model": {"type": "flava", **{k: node[k] for k in ("image_encoder", "text_encoder", "fusion", "projection_dim")}}})
    flava.load_state_dict(loaded.model.flava.state_dict())
    save_pretrained(flava, tmp_path / "hf")
    recipe = tiny_downstream("finetune_text_pair", tmp_path)
    code, out = cli(capsys, "pretrain", recipe, f"train.init_from={tmp_path / 'hf'}", "train.steps=2", "~train.select", "train.eval=null",
                    "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, out
    assert "4 model tensors kept their initial values (head.classifier.bias, head.classifier.weight, head.norm.bias, head.norm.weight)" in out

    classifier = build(load_recipe(recipe))
    load_matching_weights(tmp_path / "hf", classifier)
    for key, value in flava.state_dict().items():
        assert torch.equal(classifier.flava.state_dict()[key], value), key


def test_downstream_recipes_train_on_a_users_manifests(tmp_path, capsys):
    """The data a user brings: a JSONL of VQA questions (image, question, annotators' answers) and a CSV
    of sentence pairs with string labels, read by ``manifest`` under the user's field names."""
    import csv

    from flava_kit.data.sources.shapes_tasks import ShapesTaskSource

    questions = ShapesTaskSource("vqa", 16, image_size=32)
    lines = []
    for index in range(len(questions)):
        item = questions.read(index)
        item["image"].save(tmp_path / f"{index}.png")
        lines.append(json.dumps({"picture": f"{index}.png", "question": item["text"], "votes": item["answers"]}))
    (tmp_path / "vqa.jsonl").write_text("\n".join(lines))
    pairs = ShapesTaskSource("text_pair", 16)
    with open(tmp_path / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["premise", "hypothesis", "gold"])
        for index in range(len(pairs)):
            item = pairs.read(index)
            writer.writerow([item["text"], item["text_pair"], pairs.class_names[item["label"]]])
    manifests = {
        "finetune_vqa": f"{{type: manifest, path: {tmp_path / 'vqa.jsonl'}, image_field: picture, text_field: question, answers_field: votes}}",
        "finetune_text_pair": (f"{{type: manifest, path: {tmp_path / 'pairs.csv'}, image_field: null, text_field: premise, "
                               f"text_pair_field: hypothesis, label_field: gold, class_names: [same, recoloured, other shape]}}"),
    }  # fmt: skip
    for name, node in manifests.items():
        recipe = tiny_downstream(name, tmp_path)
        source = DOWNSTREAM[name][0]
        code, out = cli(capsys, "pretrain", recipe, f"data.sources.{source}={node}", "train.steps=2", "~train.select",
                        f"train.eval.tasks.final.data={node}", "--out", str(tmp_path / name))  # fmt: skip
        assert code == 0, out
        assert 0.0 <= json.loads((tmp_path / name / "results.json").read_text())[DOWNSTREAM[name][4]] <= 1.0


def test_a_true_match_tied_into_the_shortlist_is_on_it():
    """Duplicate captions tie: the true match counts as rank 0 (nothing scores strictly above it), so it
    must be on the shortlist re-ranking reorders, or re-ranking could lose a hit it cannot reorder."""
    from flava_kit.evaluation.metrics import reranked_ranks, retrieval_ranks

    queries = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # candidates 0-2 tie; 0 is the true match
    ranks, shortlist = retrieval_ranks(queries, candidates, shortlist=2)
    assert ranks.tolist() == [0] and 0 in shortlist[0].tolist()
    scores = torch.where(shortlist == 0, 1.0, 0.0)  # the re-ranker puts the true match first
    assert reranked_ranks(shortlist, scores, ranks).tolist() == [0]


@pytest.mark.parametrize("case", ["vqa without answers", "vqa batches for a classifier", "a selection metric the eval lacks"])
def test_downstream_mistakes_are_clear_errors_from_the_cli(case, tmp_path, capsys):
    name, overrides, message = {
        "vqa without answers": ("finetune_vqa", ["data.sources.questions={type: synthetic, size: 16, image_size: 32}"],
                                "no answers in the training data"),
        "vqa batches for a classifier": ("finetune_text_pair", ["data.task=vqa"], "data.task"),
        "a selection metric the eval lacks": ("finetune_text_pair", ["train.select.metric=val_f1"],
                                              "the evaluation reports no 'val_f1'; it reports val_accuracy"),
    }[case]  # fmt: skip
    code, out = cli(capsys, "pretrain", tiny_downstream(name, tmp_path), *overrides, "--out", str(tmp_path / "run"))
    assert code != 0 and message in out, out
    if case == "a selection metric the eval lacks":  # nothing lost: the checkpoint it could not judge is on disk
        assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "model.safetensors").is_file()
