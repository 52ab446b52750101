"""GLUE as the FLAVA paper reports it: each task's own metric (CoLA's MCC, MRPC's and QQP's F1 and
accuracy, STS-B's Pearson and Spearman of a regressor, MNLI matched and mismatched), as
``classification`` tasks of eval recipes, through recipe files and the ``flava-kit`` CLI; the
numbers are scikit-learn's and scipy's on the model's own predictions."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from flava_kit.checkpoints.loading import load_model
from flava_kit.data.batches import PretrainingBatches
from flava_kit.data.sources import ImageTextManifest
from flava_kit.data.tokenizer import run_tokenizer
from flava_kit.errors import FlavaKitError, ShapeError
from flava_kit.evaluation.glue import GLUE, chosen_metrics, class_metrics, score_metrics
from flava_kit.recipe import build
from tests.test_downstream import TINY_MODEL
from tests.test_recipes_through_cli import cli

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
COLOURS, SHAPES = ("red", "green", "blue", "yellow"), ("circle", "square", "triangle")
CLASSIFIER = ["model.type=flava_classifier", "model.modality=text", "data.task=classify", "train.eval=null"]


# GLUE's data, as its hub repo holds it: CONFIG/SPLIT-00000-of-00001.parquet, written by HF datasets


def write_split(root: Path, config: str, split: str, rows: list[dict], classes: list[str] | None = None) -> str:
    """``root/config/split-00000-of-00001.parquet`` (a ``ClassLabel`` label when ``classes``); its path."""
    import datasets

    features = {name: datasets.Value("string") for name in rows[0] if name != "label"}
    features["label"] = datasets.ClassLabel(names=classes) if classes else datasets.Value("float32" if config == "stsb" else "int64")
    path = root / config / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))
    return str(path)


def caption(rng: random.Random) -> tuple[str, str]:
    """A (colour, shape) the tiny recipe's tokenizer knows the words of."""
    return rng.choice(COLOURS), rng.choice(SHAPES)


def paraphrases(seed: int, count: int, noise: int = 0) -> list[dict]:
    """MRPC-like pairs of the shapes' words, labelled by a rule a tiny model learns in a few steps
    (1 when the second sentence names a circle), every ``noise``-th label flipped (0: none), so
    that a model that learnt the rule still errs and its metrics are not all 0 or 1."""
    rng, rows = random.Random(seed), []
    for index in range(count):
        (c1, s1), (c2, s2) = caption(rng), caption(rng)
        flip = bool(noise) and index % noise == 0
        rows.append({"sentence1": f"a {c1} {s1}", "sentence2": f"the {c2} {s2}", "label": int((s2 == "circle") != flip)})
    return rows


def similarities(seed: int, count: int) -> list[dict]:
    """STS-B-like pairs: a float score in 0-5, a fraction for most rows."""
    rng, rows = random.Random(seed), []
    for _ in range(count):
        (c1, s1), (c2, s2) = caption(rng), caption(rng)
        score = min(5.0, 2.5 * (c1 == c2) + 2.5 * (s1 == s2) + rng.choice((0.2, 0.4, 0.6, 0.8)))
        rows.append({"sentence1": f"a {c1} {s1}", "sentence2": f"a {c2} {s2}", "label": round(score, 1)})
    return rows


@pytest.fixture(scope="module")
def glue(tmp_path_factory) -> Path:
    """A GLUE-shaped folder: mrpc train and validation, cola, qqp, stsb validation, mnli matched and mismatched."""
    root = tmp_path_factory.mktemp("glue")
    write_split(root, "mrpc", "train", paraphrases(0, 64))
    write_split(root, "mrpc", "validation", paraphrases(1, 24, noise=4))
    write_split(root, "qqp", "validation", [{"question1": r["sentence1"], "question2": r["sentence2"], "label": r["label"]}
                                            for r in paraphrases(2, 20, noise=3)])  # fmt: skip
    write_split(root, "cola", "validation", [{"sentence": r["sentence1"] + " and " + r["sentence2"], "label": r["label"]}
                                             for r in paraphrases(3, 24, noise=5)])  # fmt: skip
    write_split(root, "stsb", "validation", similarities(4, 24))
    nli = ["entailment", "neutral", "contradiction"]
    for split, seed in (("validation_matched", 5), ("validation_mismatched", 6)):
        rng = random.Random(seed)
        write_split(root, "mnli", split, [{"premise": f"a {c} {s}", "hypothesis": f"the {rng.choice(COLOURS)} {s}", "label": rng.randrange(3)}
                                          for c, s in (caption(rng) for _ in range(18 if seed == 5 else 15))], nli)  # fmt: skip
    return root


def pair_source(path: str | Path, first: str = "sentence1", second: str | None = "sentence2") -> str:
    """An ``hf_dataset`` node reading GLUE's columns: a text (and a second one), and the label."""
    second_column = f", text_pair_column: {second}" if second else ""
    return f"{{type: hf_dataset, path: {path}, image_column: null, text_column: {first}{second_column}, label_column: label}}"


def rows_of(path: str) -> list[dict]:
    """A parquet file's rows, read back by HF datasets."""
    import datasets

    return datasets.Dataset.from_parquet(path).to_list()


@torch.no_grad()
def own_logits(run: str | dict, rows: list[dict], first: str, second: str | None) -> torch.Tensor:
    """The model's logits of the rows, run by hand on the BERT pairs (token types included)."""
    loaded = load_model(run)
    encoded = loaded.tokenizer([r[first] for r in rows], [r[second] for r in rows] if second else None, padding="max_length",
                               truncation=True, max_length=loaded.text_length, return_tensors="pt")  # fmt: skip
    return loaded.model(**{k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}).logits


def table_rows(out: str) -> list[list[str]]:
    """The cells of each row of the markdown table the CLI printed."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]


# through the CLI: a sentence-pair classifier fine-tuned, then scored as GLUE scores each task


def test_a_fine_tuned_pair_classifier_reports_each_glue_tasks_metric_through_the_cli(glue, tmp_path, capsys):
    recipe = tmp_path / "mrpc.yaml"
    recipe.write_text(f"recipe_version: 1\nextends: {TINY}\nmodel: {{type: flava_classifier, modality: text, num_classes: 2}}\n"
                      f"data:\n  task: classify\n  sources: {{shapes: null, mrpc: {pair_source(glue / 'mrpc' / 'train-*.parquet')}}}\n"
                      "train: {steps: 60, checkpoint_every: 60, lr: 5.0e-3, warmup_steps: 5, eval: null}\n")  # fmt: skip
    code, out = cli(capsys, "pretrain", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 0, out
    tasks = {"cola": ("glue: cola", "validation", "sentence", None),
             "mrpc": ("glue: mrpc", "validation", "sentence1", "sentence2"),
             "qqp": ("metrics: [f1, accuracy]", "validation", "question1", "question2"),
             "rte_like": ("glue: rte", "validation", "sentence1", "sentence2")}  # fmt: skip
    data = {"cola": "cola", "mrpc": "mrpc", "qqp": "qqp", "rte_like": "mrpc"}
    lines = [f"  {name}: {{type: classification, {how}, data: {pair_source(glue / data[name] / f'{split}-00000-of-00001.parquet', a, b)}}}"
             for name, (how, split, a, b) in tasks.items()]  # fmt: skip
    (tmp_path / "glue.yaml").write_text("recipe_version: 1\ntasks:\n" + "\n".join(lines) + "\n")
    code, out = cli(capsys, "eval", str(tmp_path / "run"), "--recipe", str(tmp_path / "glue.yaml"), "--out", str(tmp_path / "out"))
    assert code == 0, out
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["run"]
    assert {name: list(r["metrics"]) for name, r in results.items()} == {
        "cola": ["mcc"], "mrpc": ["f1", "accuracy"], "qqp": ["f1", "accuracy"], "rte_like": ["accuracy"]}
    rows = {(row[0], row[2]) for row in table_rows(out)}
    assert {("cola", "mcc ↑"), ("mrpc", "f1 ↑"), ("mrpc", "accuracy ↑"), ("qqp", "f1 ↑"), ("rte_like", "accuracy ↑")} <= rows
    seen = {}
    for name, (_, split, first, second) in tasks.items():  # scikit-learn's numbers on the model's own predictions
        items = rows_of(str(glue / data[name] / f"{split}-00000-of-00001.parquet"))
        predicted = own_logits(str(tmp_path / "run"), items, first, second).argmax(1).numpy()
        labels = [r["label"] for r in items]
        seen[name] = (labels, predicted)
        expected = {"mcc": matthews_corrcoef(labels, predicted), "f1": f1_score(labels, predicted), "accuracy": accuracy_score(labels, predicted)}
        assert results[name]["metrics"] == pytest.approx({m: expected[m] for m in results[name]["metrics"]}, abs=1e-12)
        assert results[name]["details"]["items"] == len(items)
        assert len(set(predicted.tolist())) == 2  # both classes predicted: the numbers compared are not a degenerate 0 or 1
    assert results["mrpc"]["metrics"]["f1"] != pytest.approx(f1_score(*seen["mrpc"], average="macro"))  # class 1's F1, as GLUE's
    # GLUE's MNLI is three-class: the two-class run is refused, naming both
    (tmp_path / "mnli.yaml").write_text(f"recipe_version: 1\ntasks:\n  mnli: {{type: classification, glue: mnli, data: "
                                        f"{pair_source(glue / 'mnli' / 'validation_matched-00000-of-00001.parquet', 'premise', 'hypothesis')}}}\n")
    code, out = cli(capsys, "eval", str(tmp_path / "run"), "--recipe", str(tmp_path / "mnli.yaml"), "--out", str(tmp_path / "mnli"))
    assert code == 2 and "tasks.mnli on model run: glue: mnli is scored on a 3-class classifier, but the model is a 2-class classifier" in out


def test_mnli_matched_and_mismatched_are_two_entries_of_one_table(glue, tmp_path, capsys):
    model = {"recipe": TINY, "overrides": [*CLASSIFIER, "model.num_classes=3"]}
    splits = {"mnli_m": "validation_matched", "mnli_mm": "validation_mismatched"}
    lines = [f"  {name}: {{type: classification, glue: mnli, data: "
             f"{pair_source(glue / 'mnli' / f'{split}-00000-of-00001.parquet', 'premise', 'hypothesis')}}}" for name, split in splits.items()]
    (tmp_path / "mnli.yaml").write_text(f"recipe_version: 1\nmodels: {{three: {json.dumps(model)}}}\ntasks:\n" + "\n".join(lines) + "\n")
    code, out = cli(capsys, "eval", str(tmp_path / "mnli.yaml"), "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert [(row[0], row[1], row[2]) for row in table_rows(out)[1:]] == [("mnli_m", "data 18", "accuracy ↑"), ("mnli_mm", "data 15", "accuracy ↑")]
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["three"]
    for name, split in splits.items():
        items = rows_of(str(glue / "mnli" / f"{split}-00000-of-00001.parquet"))
        predicted = own_logits(model, items, "premise", "hypothesis").argmax(1).numpy()
        assert results[name]["metrics"] == {"accuracy": pytest.approx(accuracy_score([r["label"] for r in items], predicted), abs=1e-12)}
        assert results[name]["details"]["class_names"] == ["entailment", "neutral", "contradiction"]  # the ClassLabel's names


# STS-B: a regressor, trained by MSE on scores, reported by Pearson and Spearman


def tiny_stsb(tmp_path: Path) -> str:
    """The shipped finetune_stsb with a tiny model, small data and selection every 4 steps."""
    def similarity(split: str, size: int) -> str:
        return f"{{type: shapes_task, task: text_similarity, split: {split}, size: {size}}}"

    path = tmp_path / "stsb.yaml"
    path.write_text(f"recipe_version: 1\nextends: finetune_stsb\n{TINY_MODEL}"
                    f"data:\n  sources: {{pairs: {similarity('train', 128)}}}\n  batch_size: 16\n"
                    "  image_masking: {type: block, num_masking_patches: 6, min_block_patches: 2}\n"
                    "train:\n  steps: 8\n  warmup_steps: 1\n  lr: 3.0e-3\n  checkpoint_every: 8\n  log_every: 1\n"
                    f"  select: {{eval: {{tasks: {{val: {{type: classification, glue: stsb, data: {similarity('validation', 24)}}}}}}}, "
                    "metric: val_pearson, every: 4}\n"
                    f"  eval: {{tasks: {{final: {{type: classification, glue: stsb, data: {similarity('held_out', 24)}}}}}}}\n")  # fmt: skip
    return str(path)


def test_stsb_regression_fine_tunes_and_reports_pearson_and_spearman_through_the_cli(glue, tmp_path, capsys):
    recipe = tiny_stsb(tmp_path)
    code, out = cli(capsys, "validate", recipe)
    assert code == 0, out
    run = tmp_path / "run"
    code, out = cli(capsys, "pretrain", recipe, "--out", str(run))
    assert code == 0, out
    losses = [line.split(",") for line in (run / "losses.csv").read_text().splitlines()]
    assert losses[0][:4] == ["step", "lr", "loss", "regression"]
    mse = [float(row[3]) for row in losses[1:]]
    assert len(mse) == 8 and all(math.isfinite(v) for v in mse) and np.mean(mse[-2:]) < np.mean(mse[:2])  # MSE towards 0-5 scores falls
    summary = json.loads((run / "results.json").read_text())
    assert set(summary) >= {"final_pearson", "final_spearman"} and summary["selected"]["step"] in (4, 8)
    assert (run / "validation.csv").read_text().splitlines()[0].startswith("step,val_pearson")
    # on STS-B's own layout: sentence1, sentence2 and a float32 label, read as scores
    stsb = str(glue / "stsb" / "validation-00000-of-00001.parquet")
    (tmp_path / "eval.yaml").write_text(f"recipe_version: 1\ntasks:\n  stsb: {{type: classification, glue: stsb, data: {pair_source(stsb)}}}\n")
    code, out = cli(capsys, "eval", str(run), "--recipe", str(tmp_path / "eval.yaml"), "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert {(row[0], row[2]) for row in table_rows(out)} >= {("stsb", "pearson ↑"), ("stsb", "spearman ↑")}
    result = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["run"]["stsb"]
    items = rows_of(stsb)
    logits = own_logits(str(run), items, "sentence1", "sentence2")
    assert logits.shape == (len(items), 1)  # one float per pair
    predicted, targets = logits[:, 0].double().numpy(), np.array([r["label"] for r in items], dtype=np.float64)
    assert sum(not float(t).is_integer() for t in targets) > len(targets) // 2  # fractions, kept as such
    assert result["metrics"] == pytest.approx({"pearson": stats.pearsonr(predicted, targets).statistic,
                                               "spearman": stats.spearmanr(predicted, targets).statistic}, abs=1e-6)  # fmt: skip
    assert list(result["metrics"]) == ["pearson", "spearman"] and result["details"]["targets"]["max"] == pytest.approx(targets.max())
    assert Path(result["pictures"][0]).name == "scores.png" and Path(result["pictures"][0]).is_file()
    # a classifier is not scored on scores: the error names the item and the fix
    model = {"recipe": TINY, "overrides": [*CLASSIFIER, "model.num_classes=2"]}
    (tmp_path / "wrong.yaml").write_text(f"recipe_version: 1\nmodels: {{two: {json.dumps(model)}}}\n"
                                         f"tasks:\n  stsb: {{type: classification, data: {pair_source(stsb)}}}\n")  # fmt: skip
    code, out = cli(capsys, "eval", str(tmp_path / "wrong.yaml"), "--out", str(tmp_path / "wrong"))
    fraction = next(t for t in targets if not float(t).is_integer())
    assert code == 2 and f"has the score {fraction:g} as its label, but a class task needs class indices" in out and "num_classes: 1" in out


def test_bad_metric_names_glue_tasks_and_both_at_once_are_validate_errors_at_their_paths(glue, tmp_path, capsys):
    source = pair_source(glue / "mrpc" / "validation-00000-of-00001.parquet")
    (tmp_path / "bad.yaml").write_text("recipe_version: 1\ntasks:\n"
                                       f"  cola: {{type: classification, metrics: [accuracy, mccc], data: {source}}}\n"
                                       f"  mnli: {{type: classification, glue: mnlii, data: {source}}}\n"
                                       f"  mrpc: {{type: classification, glue: mrpc, metrics: [accuracy], data: {source}}}\n")  # fmt: skip
    code, out = cli(capsys, "validate", str(tmp_path / "bad.yaml"))
    assert code == 2 and "3 problems" in out, out
    assert "tasks.cola.metrics.1: " in out and "'mccc'" in out and "'pearson'" in out  # the names it takes are listed
    assert "tasks.mnli.glue: " in out and "'mnlii'" in out and "'stsb'" in out
    assert "tasks.mrpc.metrics: metrics and glue both choose what to report (glue: mrpc reports f1, accuracy)" in out
    assert "bad.yaml:3" in out and "bad.yaml:5" in out  # each at its line


def test_a_classifier_trained_on_scores_is_told_to_be_a_regressor(tmp_path, capsys):
    recipe = tmp_path / "wrong.yaml"
    recipe.write_text(f"recipe_version: 1\nextends: {TINY}\nmodel: {{type: flava_classifier, modality: text, num_classes: 6}}\n"
                      "data:\n  task: classify\n  sources: {shapes: null, pairs: {type: shapes_task, task: text_similarity, size: 32}}\n"
                      "train: {steps: 1, eval: null}\n")  # fmt: skip
    code, out = cli(capsys, "pretrain", str(recipe), "--out", str(tmp_path / "run"))
    assert code == 2 and "labels hold scores" in out and "6-class classifier" in out and "model.num_classes: 1" in out


# the pieces: scores through a source, a batch and the model; the metrics' choice and edge cases


def test_scores_pass_through_a_source_and_a_batch_unchanged_and_train_a_regressor_by_mse(tmp_path):
    lines = [{"text": "a red circle", "pair": "a red square", "label": 3.8}, {"text": "a", "pair": "b", "label": "2.6"},
             {"text": "a", "pair": "b", "label": 4.0}, {"text": "a", "pair": "b", "label": -0.5}, {"text": "a", "pair": "b", "label": -1}]
    (tmp_path / "scores.jsonl").write_text("\n".join(map(json.dumps, lines)))
    source = ImageTextManifest(str(tmp_path / "scores.jsonl"), image_field=None, text_pair_field="pair")
    items = [source.read(i) for i in range(len(source))]
    assert [item.get("label") for item in items] == [3.8, 2.6, 4, -0.5, None]  # a negative integer is still "no label"
    batches = PretrainingBatches({"p": source}, batch_size=4, processor=None, tokenizer=run_tokenizer(None), text_length=12,
                                 image_masking=None, text_masking=None, task="classify")  # fmt: skip
    batch = batches.classification_batch(items[:4])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == pytest.approx([3.8, 2.6, 4.0, -0.5])
    assert batches.classification_batch(items[2:3])["labels"].dtype == torch.long  # class indices stay indices
    model = build({"recipe_version": 1, "extends": TINY, "model": {"type": "flava_classifier", "modality": "text", "num_classes": 1}})
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        out = model(**inputs, labels=batch["labels"])
    assert out.logits.shape == (4, 1) and list(out.losses) == ["regression"] and model.loss_names == ("regression",)
    assert float(out.loss) == pytest.approx(float(torch.nn.functional.mse_loss(out.logits[:, 0], batch["labels"])), rel=1e-6)
    classifier = build({"recipe_version": 1, "extends": TINY, "model": {"type": "flava_classifier", "modality": "text", "num_classes": 5}})
    with pytest.raises(ShapeError, match=r"labels hold scores \(3\.8"):
        classifier(**inputs, labels=batch["labels"])


def test_glue_protocols_and_metric_choices_by_hand():
    assert {task: p.metrics for task, p in GLUE.items()} == {
        "cola": ("mcc",), "sst2": ("accuracy",), "mrpc": ("f1", "accuracy"), "qqp": ("f1", "accuracy"), "stsb": ("pearson", "spearman"),
        "mnli": ("accuracy",), "qnli": ("accuracy",), "rte": ("accuracy",), "wnli": ("accuracy",)}  # fmt: skip
    assert chosen_metrics(None, None, 3) == ("accuracy", "macro_f1", "mcc", "roc_auc") and chosen_metrics(None, None, 1) == ("pearson", "spearman")
    for metrics, glue, classes, message in ((["mcc"], None, 1, "metrics mcc: a regressor"), (["pearson"], None, 2, "metrics pearson: a 2-class"),
                                            (["f1"], None, 3, "use macro_f1"), (None, "stsb", 2, "glue: stsb is scored on a regressor")):  # fmt: skip
        with pytest.raises(FlavaKitError, match=message):
            chosen_metrics(metrics, glue, classes)
    logits = np.array([[0.2, 0.1], [0.0, 1.0], [1.0, 0.0], [0.3, 0.9], [0.0, 2.0]])
    labels, predicted = np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 1, 1])
    metrics, _ = class_metrics(logits, labels, ("f1", "mcc", "accuracy"))
    assert list(metrics) == ["f1", "mcc", "accuracy"]
    assert metrics == pytest.approx({"f1": f1_score(labels, predicted), "mcc": matthews_corrcoef(labels, predicted), "accuracy": 0.6})
    metrics, notes = score_metrics(np.full(4, 2.5), np.array([0.0, 1.2, 3.4, 5.0]), ("pearson", "spearman"))
    assert metrics == {} and notes == {"pearson": "left out: the predictions are constant", "spearman": "left out: the predictions are constant"}
