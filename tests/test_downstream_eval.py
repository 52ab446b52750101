"""Downstream evaluation: a fine-tuned classifier's accuracy, macro-F1, MCC and ROC AUC, VQA accuracy,
retrieval re-ranked by the ITM head; by hand, through the feature pass, and through ``flava-kit eval``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from flava_kit.checkpoints.loading import LoadedModel, load_model
from flava_kit.cli import main
from flava_kit.data.tokenizer import tokenizer_from_words
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.cache import EntryWriter
from flava_kit.evaluation.encode import PairScorer, dataset_features
from flava_kit.evaluation.metrics import answer_coverage, classification_metrics, reranked_ranks, vqa_accuracy
from flava_kit.evaluation.passes import EncodingInputs
from flava_kit.evaluation.tasks.base import Features, TaskInputs
from flava_kit.evaluation.tasks.classification import Classification
from flava_kit.evaluation.tasks.retrieval import Retrieval
from flava_kit.evaluation.tasks.vqa import VisualQuestionAnswering

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
WORDS = ["a", "the", "red", "green", "blue", "yellow", "circle", "square", "triangle"]


def features(labels, keys=None, answers=None, **representations) -> Features:
    arrays = {name: np.asarray(rows, dtype=np.float32) for name, rows in representations.items()}
    return Features(arrays, np.asarray(labels, dtype=np.int64), keys or [f"item-{i}" for i in range(len(labels))], answers=answers)


def inputs(by_role: dict, kind: str, **extra) -> TaskInputs:
    return TaskInputs(lambda role, modality: by_role[(role, modality)], extra.pop("sources", {}), lambda texts: None, kind, **extra)


def binary_logits(probabilities) -> list[list[float]]:
    """Logits whose softmax gives class 1 exactly ``p``."""
    return [[0.0, math.log(p / (1 - p))] for p in probabilities]


# metrics by hand


def test_binary_auroc_accuracy_macro_f1_and_mcc_by_hand():
    # P(class 1) 0.1, 0.4, 0.35, 0.8 for labels 0, 0, 1, 1: of the 4 (positive, negative) pairs, 3 are
    # ordered right (0.35 < 0.4 is not): AUC 0.75. Predicted 0, 0, 0, 1: TP 1, TN 2, FP 0, FN 1.
    metrics, notes = classification_metrics(np.array(binary_logits([0.1, 0.4, 0.35, 0.8])), np.array([0, 0, 1, 1]))
    f1_of_0, f1_of_1 = 2 * (2 / 3) * 1 / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5
    mcc = (1 * 2 - 0 * 1) / math.sqrt((1 + 0) * (1 + 1) * (2 + 0) * (2 + 1))  # (TP TN - FP FN) / sqrt(...)
    assert metrics == pytest.approx({"accuracy": 0.75, "roc_auc": 0.75, "macro_f1": (f1_of_0 + f1_of_1) / 2, "mcc": mcc})
    assert notes == {}


def test_macro_f1_and_mcc_of_a_three_class_confusion():
    labels, predicted = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    metrics, _ = classification_metrics(np.eye(3)[predicted] * 4.0, labels)
    # F1 per class: 0 (P 1/2, R 1/2) 0.5; 1 (P 2/3, R 1) 0.8; 2 (P 1, R 1/2) 2/3
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3) and metrics["accuracy"] == pytest.approx(4 / 6)
    # Gorodkin's MCC: (correct x n - sum predicted_k x true_k) / sqrt((n^2 - sum predicted_k^2)(n^2 - sum true_k^2))
    assert metrics["mcc"] == pytest.approx((4 * 6 - (2 * 2 + 3 * 2 + 1 * 2)) / math.sqrt((36 - (4 + 9 + 1)) * (36 - 12)))
    assert 0.0 < metrics["roc_auc"] < 1.0


def test_an_undefined_auc_is_left_out_with_a_note():
    metrics, notes = classification_metrics(np.array(binary_logits([0.2, 0.7, 0.9])), np.array([1, 1, 1]))
    assert "roc_auc" not in metrics and "one class" in notes["roc_auc"].lower() and metrics["accuracy"] == pytest.approx(2 / 3)


def test_vqa_credit_with_ten_annotators():
    answers = [["yes"] * 10, ["yes"] * 2 + ["no"] * 8, ["red"] * 9 + ["yes"], ["green"] * 10]
    # "yes" is worth 1, 2/3 (two of ten), 1/3 and 0; "no" on the second question would be worth 1
    assert vqa_accuracy(["yes"] * 4, answers) == pytest.approx((1 + 2 / 3 + 1 / 3 + 0) / 4)
    assert vqa_accuracy(["yes", "no", "red", "blue"], answers) == pytest.approx(3 / 4)
    # ["yes", "no"] reaches the most-given answer of questions 1 and 2; the best it can score is 1, 1, 1/3, 0
    assert answer_coverage(["yes", "no"], answers) == pytest.approx({"answerable": 0.5, "ceiling": (1 + 1 + 1 / 3) / 4})


def test_reranked_ranks_by_hand():
    shortlist = torch.tensor([[2, 0, 1], [0, 2, 1], [0, 1, 3]])  # query 2's true match (2) is not in its list
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1], [0.5, 0.4, 0.3]])
    ranks = torch.tensor([1, 2, 5])
    assert reranked_ranks(shortlist, scores, ranks).tolist() == [0, 2, 5]


# the tasks on hand-made features


def test_classification_reports_sklearn_metrics_and_refuses_a_model_that_was_not_fine_tuned():
    data = features([0, 0, 1, 1], logits=binary_logits([0.1, 0.4, 0.35, 0.8]))
    task = Classification(None, class_names=["benign", "hateful"])
    result = task.run(inputs({("data", "image"): data}, "classifier"))
    assert result.metrics["roc_auc"] == pytest.approx(0.75) and result.metrics["accuracy"] == 0.75
    assert result.details["confusion"] == [[2, 0], [1, 1]] and result.details["class_names"] == ["benign", "hateful"]
    with pytest.raises(FlavaKitError, match="zero_shot_classification .* linear_probe"):
        task.run(inputs({("data", "image"): data}, "flava"))
    with pytest.raises(FlavaKitError, match="predicts 2 classes, but there are 3 class names"):
        Classification(None, class_names=["a", "b", "c"]).run(inputs({("data", "image"): data}, "classifier"))


def test_vqa_scores_the_top_answer_by_credit_and_names_a_source_without_answers():
    answers = [["yes"] * 10, ["yes"] * 2 + ["no"] * 8, ["red"] * 9 + ["yes"]]
    data = features([-1] * 3, answers=answers, logits=[[3.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 1.0, 5.0]])  # yes, yes, red
    result = VisualQuestionAnswering(None).run(inputs({("data", "image"): data}, "vqa", answers=["yes", "no", "red"]))
    assert result.metrics == pytest.approx({"vqa_accuracy": (1 + 2 / 3 + 1) / 3})
    assert result.details["most_predicted"] == [{"answer": "yes", "questions": 2}, {"answer": "red", "questions": 1}]
    unanswered = features([-1] * 2, answers=[["yes"], None], logits=[[1.0, 0.0, 0.0]] * 2)
    source = SimpleNamespace(path=Path("questions.jsonl"))
    with pytest.raises(FlavaKitError, match=r"SimpleNamespace questions.jsonl\): 1 of 2 items have no answers \(first: item-1\)"):
        VisualQuestionAnswering(None).run(inputs({("data", "image"): unanswered}, "vqa", answers=["yes", "no", "red"],
                                                 sources={"data": source}))  # fmt: skip
    with pytest.raises(FlavaKitError, match="not a classifier model"):
        VisualQuestionAnswering(None).run(inputs({("data", "image"): data}, "classifier"))


def test_retrieval_rerank_reorders_each_shortlist_by_pair_scores():
    # image i is most similar to text i-1, then text i; text j to image j+1, then image j: contrastive R@1 is 0
    eye = torch.eye(3)
    texts = 0.6 * eye + 0.8 * eye.roll(1, dims=1)
    by_role = {("data", "image"): features([-1] * 3, projected=eye), ("data", "text"): features([-1] * 3, projected=texts)}
    calls = []

    def score_pairs(role, image_rows, text_rows):
        calls.extend(zip(image_rows, text_rows))
        return torch.tensor([1.0 if i == t else 0.0 for i, t in zip(image_rows, text_rows)])

    result = Retrieval(None, ks=(1, 2), rerank=2).run(inputs(by_role, "flava", score_pairs=score_pairs))
    assert result.metrics == {"image_to_text_R@1": 0.0, "image_to_text_R@2": 1.0, "text_to_image_R@1": 0.0, "text_to_image_R@2": 1.0,
                              "reranked_image_to_text_R@1": 1.0, "reranked_image_to_text_R@2": 1.0,
                              "reranked_text_to_image_R@1": 1.0, "reranked_text_to_image_R@2": 1.0}  # fmt: skip
    assert sorted(calls) == sorted({(i, i) for i in range(3)} | {(i, (i - 1) % 3) for i in range(3)})  # each pair scored once
    with pytest.raises(FlavaKitError, match="score_pairs"):
        Retrieval(None, rerank=2).run(inputs(by_role, "flava"))


# the feature pass and the cache


class Listed:
    """A source with random access over given items."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> dict:
        return self.items[index]

    decode = read


class TypeCounter(torch.nn.Module):
    """A text 'classifier' whose logits are (type-1 tokens, real tokens) of each input: what reached it."""

    modality = "text"

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, token_type_ids=None, pixel_values=None):
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        return SimpleNamespace(logits=torch.stack([types.sum(1), attention_mask.sum(1)], dim=1).float())


def test_a_text_pair_is_tokenised_as_a_bert_pair_and_its_token_types_reach_the_classifier(tmp_path):
    tokenizer = tokenizer_from_words(WORDS, None)
    pairs = Listed([{"key": "p0", "text": "a red circle", "text_pair": "the blue square", "label": 1},
                    {"key": "p1", "text": "a circle", "text_pair": "a green triangle", "label": 0}])  # fmt: skip
    (batch,) = list(EncodingInputs(pairs, {"text"}, None, tokenizer, 12, 8))
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0][:9])
    assert tokens == ["[CLS]", "a", "red", "circle", "[SEP]", "the", "blue", "square", "[SEP]"]
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 4 + [0] * 3
    single = Listed([{"key": "s", "text": "a red circle"}])
    assert "token_type_ids" not in next(iter(EncodingInputs(single, {"text"}, None, tokenizer, 12, 8)))
    mixed = Listed([pairs.items[0], {"key": "lonely", "text": "a square"}])
    with pytest.raises(FlavaKitError, match="item lonely has no text_pair"):
        list(EncodingInputs(mixed, {"text"}, None, tokenizer, 12, 8))
    loaded = LoadedModel(TypeCounter(), tokenizer, image_size=32, text_length=12, source="test", kind="classifier")
    found, encoded = dataset_features(loaded, pairs, {"type": "listed", "n": 2}, {"image"}, tmp_path, batch_size=8)
    assert found["image"].tensor("logits").tolist() == [[4.0, 9.0], [4.0, 8.0]] and encoded == {"image": 2}
    assert found["image"].labels.tolist() == [1, 0]
    assert dataset_features(loaded, pairs, {"type": "listed", "n": 2}, {"image"}, tmp_path, batch_size=8)[1] == {"image": 0}


def test_answers_are_stored_with_the_features_in_the_source_order_across_a_resumed_pass(tmp_path):
    def add(writer, rows, answers):
        orders = np.array([[0, r] for r in rows])
        logits = {"logits": np.array([[float(r)] for r in rows], dtype=np.float32)}
        writer.add(orders, [f"k{r}" for r in rows], np.full(len(rows), -1), logits, np.zeros((0, 2), dtype=np.int64), answers)

    first = EntryWriter(tmp_path, "entry", chunk_rows=100)
    add(first, [3, 2], [["x", "x"], None])
    first.flush()  # then interrupted: the next pass finds this chunk and is offered its rows again
    resumed = EntryWriter(tmp_path, "entry", chunk_rows=100)
    add(resumed, [3, 2], [["x", "x"], None])
    add(resumed, [0], None)  # a batch of items without answers
    add(resumed, [1], [["yes", "no"]])
    entry = resumed.finish()
    assert entry.keys == ["k0", "k1", "k2", "k3"] and entry.tensor("logits").flatten().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert entry.answers == [None, ["yes", "no"], None, ["x", "x"]]


# through a real model and ``flava-kit eval``


def square(folder: Path, name: str, rgb: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (32, 32), (250, 250, 250))
    image.paste(Image.new("RGB", (16, 16), rgb), (8, 8))
    image.save(folder / name)
    return name


COLOUR_VALUES = {"red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 119, 180), "yellow": (240, 200, 30)}


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> Path:
    """Eight captioned pictures (two shapes' words per colour) in a manifest."""
    folder = tmp_path_factory.mktemp("captions")
    rows = [{"image": square(folder, f"{c}-{s}.png", rgb), "text": f"a {c} {s}"}
            for c, rgb in COLOUR_VALUES.items() for s in ("circle", "square")]  # fmt: skip
    (folder / "pairs.jsonl").write_text("\n".join(map(json.dumps, rows)))
    return folder / "pairs.jsonl"


def eval_cli(capsys, tmp_path: Path, recipe: str, out: str) -> tuple[int, dict, str]:
    (tmp_path / "recipe.yaml").write_text(recipe)
    code = main(["eval", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    return code, json.loads((tmp_path / out / "results.json").read_text()) if code == 0 else {}, err


def test_pair_scores_are_what_the_itm_objective_computes(run_dir, captions):
    from flava_kit.data.sources import ImageTextManifest

    loaded, source = load_model(str(run_dir)), ImageTextManifest(str(captions))
    keys = [source.read(i)["key"] for i in range(len(source))]
    scorer = PairScorer(loaded, source, features([-1] * len(keys), keys), batch_size=2)
    scores = scorer([0, 1, 2], [0, 2, 5])
    items = [source.read(i) for i in range(len(source))]
    encoded = loaded.tokenizer([items[i]["text"] for i in (0, 2, 5)], padding="max_length", max_length=loaded.text_length,
                               return_tensors="pt")  # fmt: skip
    pixels = loaded.processor()([items[i]["image"] for i in (0, 1, 2)], codebook=False)["pixel_values"]
    with torch.no_grad():
        out = loaded.model(pixel_values=pixels, input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                           itm_labels=torch.ones(3, dtype=torch.long))  # fmt: skip
    assert torch.allclose(scores, out.logits["itm"].log_softmax(-1)[:, 1], atol=1e-5)
    with pytest.raises(FlavaKitError, match="item 1 is pairs.jsonl:2, but its features are wrong's"):
        PairScorer(loaded, source, features([-1] * len(keys), [keys[0], "wrong"] + keys[2:]))([1], [1])
    assert torch.allclose(scorer([2, 1], [5, 2]), scores[[2, 1]], atol=1e-5)  # texts 2 and 5 from kept tokens, in another batch


def test_retrieval_reranked_by_the_itm_head_through_the_cli(run_dir, captions, tmp_path, capsys):
    task = f"tasks:\n  retrieval: {{type: retrieval, data: {{type: manifest, path: {captions}}}, ks: [1, 5], rerank: 3}}\n"
    code, results, err = eval_cli(capsys, tmp_path, f"models: {{run: {run_dir}}}\n{task}", "out")
    assert code == 0, err
    result = results["results"]["run"]["retrieval"]
    metrics = result["metrics"]
    assert set(metrics) == {f"{p}{d}_R@{k}" for p in ("", "reranked_") for d in ("image_to_text", "text_to_image") for k in (1, 5)}
    for direction in ("image_to_text", "text_to_image"):  # re-ranking the top 3 moves nothing in or out of the top 5
        assert metrics[f"reranked_{direction}_R@5"] == metrics[f"{direction}_R@5"]
    assert result["details"] == {"pairs": 8, "rerank": 3, "reranked_by": "itm"}
    no_itm = f"models: {{plain: {{recipe: {TINY}, overrides: ['~model.objectives.itm', 'train.eval=null']}}}}\n{task}"
    code, _, err = eval_cli(capsys, tmp_path, no_itm, "no_itm")
    assert code == 2 and "tasks.retrieval on model plain" in err and "image-text matching head" in err


def test_a_text_pair_classifier_through_the_cli(tmp_path, capsys):
    names = ["same", "recoloured", "other shape"]
    rows = []
    for colour in ("red", "green", "blue", "yellow"):
        for shape, other in (("circle", "square"), ("triangle", "circle")):
            recoloured = "red" if colour != "red" else "blue"
            rows += [{"premise": f"a {colour} {shape}", "hypothesis": f"the {colour} {shape}", "label": "same"},
                     {"premise": f"a {colour} {shape}", "hypothesis": f"a {recoloured} {shape}", "label": "recoloured"},
                     {"premise": f"a {colour} {shape}", "hypothesis": f"a {colour} {other}", "label": "other shape"}]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("\n".join(map(json.dumps, rows)))
    overrides = ["model.type=flava_classifier", "model.modality=text", "model.num_classes=3", "data.task=classify", "train.eval=null"]
    recipe = f"""
models: {{pairs: {{recipe: {TINY}, overrides: {json.dumps(overrides)}}}}}
tasks:
  nli: {{type: classification, data: {{type: manifest, path: {tmp_path / 'pairs.jsonl'}, image_field: null, text_field: premise,
        text_pair_field: hypothesis, class_names: {json.dumps(names)}}}}}
"""
    code, results, err = eval_cli(capsys, tmp_path, recipe, "out")
    assert code == 0, err
    result = results["results"]["pairs"]["nli"]
    assert set(result["metrics"]) == {"accuracy", "macro_f1", "mcc", "roc_auc"} and result["details"]["class_names"] == names
    # the same numbers from the model run by hand on the BERT pairs, token types included
    loaded = load_model({"recipe": TINY, "overrides": overrides})
    encoded = loaded.tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows], padding="max_length", truncation=True,
                               max_length=loaded.text_length, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        logits = loaded.model(**{k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).logits
    expected, _ = classification_metrics(logits.numpy(), np.array([names.index(r["label"]) for r in rows]))
    assert result["metrics"] == pytest.approx(expected, abs=1e-6)
    code, again, err = eval_cli(capsys, tmp_path, recipe, "again")
    assert code == 0, err
    repeated = again["results"]["pairs"]["nli"]
    assert repeated["encoded"] == {"data:image": 0} and repeated["metrics"] == result["metrics"]


def test_vqa_through_the_cli_reads_answers_back_from_the_cache(captions, tmp_path, capsys):
    answers = [["yes"] * 10, ["yes"] * 2 + ["no"] * 8, ["no"] * 10, ["red"] * 9 + ["yes"], ["blue"] * 10, ["green"] * 10]
    rows = [{"image": f"{captions.parent}/{c}-circle.png", "question": f"the {c} circle", "answers": a}
            for c, a in zip(["red", "green", "blue", "yellow", "red", "green"], answers)]  # fmt: skip
    (tmp_path / "vqa.jsonl").write_text("\n".join(map(json.dumps, rows)))

    def model(vocabulary: list[str]) -> str:  # YAML reads a bare yes as True: the answers go quoted
        overrides = ["model.type=flava_vqa", f"model.answers={json.dumps(vocabulary)}", "data.task=vqa", "train.eval=null"]
        return f"{{recipe: {TINY}, overrides: {json.dumps(overrides)}}}"

    recipe = f"""
models: {{one: {model(["yes"])}, four: {model(["yes", "no", "red", "blue"])}}}
tasks:
  vqa: {{type: vqa, data: {{type: manifest, path: {tmp_path / 'vqa.jsonl'}, text_field: question, answers_field: answers}}}}
"""
    code, results, err = eval_cli(capsys, tmp_path, recipe, "out")
    assert code == 0, err
    one, four = results["results"]["one"]["vqa"], results["results"]["four"]["vqa"]
    assert results["models"]["one"]["kind"] == "vqa"
    # one answer, "yes", always predicted: worth 1, 2/3, 0, 1/3, 0, 0
    assert one["metrics"] == pytest.approx({"vqa_accuracy": 2 / 6}) and one["details"]["answerable"] == pytest.approx(1 / 6)
    assert four["details"]["answerable"] == four["details"]["ceiling"] == pytest.approx(5 / 6)  # "green" is not in the vocabulary
    assert 0.0 <= four["metrics"]["vqa_accuracy"] <= 5 / 6 and sum(a["questions"] for a in four["details"]["most_predicted"]) == 6
    code, again, err = eval_cli(capsys, tmp_path, recipe, "again")
    assert code == 0, err
    assert all(again["results"][m]["vqa"]["encoded"] == {"data:image": 0} for m in ("one", "four"))
    assert {m: again["results"][m]["vqa"]["metrics"] for m in ("one", "four")} == {"one": one["metrics"], "four": four["metrics"]}
    code, _, err = eval_cli(capsys, tmp_path, recipe.replace("type: vqa,", "type: classification,"), "wrong")
    assert code == 2 and "the vqa task scores a VQA model" in err
