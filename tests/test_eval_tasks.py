"""The built-in evaluation tasks against hand-computed cases, built from recipe nodes, and a plug-in task."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.report import class_report
from flava_kit.evaluation.tasks import knn, linear_probe, zero_shot_classification
from flava_kit.evaluation.tasks.base import Features, TaskInputs, split_rows
from flava_kit.evaluation.tasks.knn import KNearestNeighbours
from flava_kit.evaluation.tasks.linear_probe import LinearProbe
from flava_kit.evaluation.tasks.retrieval import Retrieval
from flava_kit.evaluation.tasks.zero_shot_classification import ZeroShotClassification
from flava_kit.recipe import build_node
from flava_kit.registry import registry


def features(labels, keys=None, **representations) -> Features:
    """Hand-made features: each representation a float32 array, row i for item i."""
    arrays = {name: np.asarray(rows, dtype=np.float32) for name, rows in representations.items()}
    return Features(arrays, np.asarray(labels, dtype=np.int64), keys or [f"item-{i}" for i in range(len(labels))])


def refuse(texts):
    raise AssertionError(f"no text should be encoded here, got {list(texts)}")


def task_inputs(by_role: dict, encode=refuse, kind: str = "flava", sources: dict | None = None) -> TaskInputs:
    """``by_role`` maps (role, modality) to Features."""
    return TaskInputs(lambda role, modality: by_role[(role, modality)], sources or {}, encode, kind)


def fake_encoder(vectors: dict[str, list[float]]):
    """``encode_texts`` mapping known prompts to chosen vectors (normalised, as the real one); unknown prompts fail."""
    return lambda texts: torch.nn.functional.normalize(torch.tensor([vectors[t] for t in texts]), dim=1)


PROMPTS = {"a cat": [1.0, 0.0], "the cat": [0.6, 0.8], "a dog": [0.0, 1.0], "the dog": [0.0, 1.0]}


def test_zero_shot_by_hand_ensembles_templates(tmp_path):
    # cat = normalise(mean([1, 0], [.6, .8])) = [.894, .447], dog = [0, 1]. Image 2 ([.6, .8], a dog)
    # scores cat .894 > dog .8: wrong, though the first template alone ([1, 0]: .6 < .8) would get it right.
    data = features([0, 1, 1], projected=[[1, 0], [0, 1], [0.6, 0.8]])
    task = ZeroShotClassification(None, templates=["a {}", "the {}"], ks=(1, 2, 5))
    sources = {"data": SimpleNamespace(class_names=["cat", "dog"])}
    result = task.run(task_inputs({("data", "image"): data}, fake_encoder(PROMPTS), sources=sources))
    assert result.metrics == pytest.approx({"accuracy": 2 / 3, "acc@2": 1.0, "acc@5": 1.0, "mean_per_class_recall": (1 + 1 / 2) / 2})
    assert result.details["confusion"] == [[1, 0], [1, 1]]
    assert result.details["per_class"] == [{"class": "cat", "images": 1, "recall": 1.0}, {"class": "dog", "images": 2, "recall": 0.5}]
    assert result.details["chance"] == 0.5 and result.details["images"] == 3 and result.details["class_names"] == ["cat", "dog"]
    assert result.details["templates"] == ["a {}", "the {}"]
    result.pictures["confusion.png"](tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").stat().st_size > 0


def test_zero_shot_in_chunks_equals_the_whole_report(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(11, 3, generator=generator), dim=1)
    labels = torch.arange(11) % 4
    names = ["w", "x", "y", "z"]
    vectors = {f"a {n}": torch.randn(3, generator=generator).tolist() for n in names}
    monkeypatch.setattr(zero_shot_classification, "CHUNK", 3)  # 4 chunks, the last short
    task = ZeroShotClassification(None, class_names=names, templates=["a {}"], ks=(1, 2))
    result = task.run(task_inputs({("data", "image"): features(labels, projected=images)}, fake_encoder(vectors)))
    whole = class_report(images @ fake_encoder(vectors)([f"a {n}" for n in names]).T, labels, names)
    assert result.details["confusion"] == whole["confusion"]
    assert result.details["per_class"] == [pytest.approx(row) for row in whole["per_class"]]  # class_report's recalls are float32
    assert result.metrics["accuracy"] == pytest.approx(whole["acc@1"])
    assert result.metrics["mean_per_class_recall"] == pytest.approx(whole["mean_per_class_recall"])


def test_zero_shot_scores_a_classifier_by_its_logits():
    logits = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.5, 0.0]]  # predicted 0, 2, 0; second choices 1, 1, 1
    data = features([0, 1, 2], logits=logits, projected=[[1, 0]] * 3)
    result = ZeroShotClassification(None, class_names=["a", "b", "c"], ks=(1, 2)).run(task_inputs({("data", "image"): data}, kind="classifier"))
    assert result.metrics == pytest.approx({"accuracy": 1 / 3, "acc@2": 2 / 3, "mean_per_class_recall": 1 / 3})
    assert result.details["confusion"] == [[1, 0, 0], [0, 0, 1], [1, 0, 0]] and result.details["scores"] == "logits"
    with pytest.raises(FlavaKitError, match="predicts 3 classes, but there are 2 class names"):
        two = ZeroShotClassification(None, class_names=["a", "b"])
        two.run(task_inputs({("data", "image"): features([0, 1, 1], logits=logits)}, kind="classifier"))
    many = features(list(range(51)), logits=np.eye(51))
    result = ZeroShotClassification(None, class_names=[f"c{i}" for i in range(51)]).run(task_inputs({("data", "image"): many}, kind="classifier"))
    assert result.metrics["accuracy"] == 1.0 and result.pictures == {}  # no confusion picture above 50 classes


# Training rows, of classes 0, 1, 2, 1, 2: rows 3 and 4 are [.8, .6] times 5 and [0, -1] times 5, so that cosine
# similarity differs from the dot product.
KNN_TRAIN = features([0, 1, 2, 1, 2], projected=[[1, 0], [0, 1], [-1, 0], [4, 3], [0, -5]])
# Query 0 [1, .1]: nearest rows 0 (.995, class 0), 3 (.856, 1), 1 (.100, 1): class 1 outvotes the nearest. Right.
# Query 1 [.5, -1]: rows 4 (.894, 2), 0 (.447, 0), 3 (-.179, 1): a three-way tie, class 2's similarity is highest. Right.
# Query 2 [-1, .2]: rows 2 (.981, 2), 1 (.196, 1), 4 (-.196, 2): class 2 with two votes; the label is 0. Wrong.
# Query 3 [1, -.1]: rows 0 (.995, 0), 3 (.736, 1), 4 (.100, 2): a tie that class 0 wins. Right (by dot products, class 1 would).
KNN_TEST = features([1, 2, 0, 0], projected=[[1, 0.1], [0.5, -1], [-1, 0.2], [1, -0.1]])


@pytest.mark.parametrize("chunks", [(1024, 8192), (1, 2)])
def test_knn_by_hand(monkeypatch, chunks):
    monkeypatch.setattr(knn, "TEST_CHUNK", chunks[0])
    monkeypatch.setattr(knn, "TRAIN_CHUNK", chunks[1])
    predicted = []
    monkeypatch.setattr(knn, "vote", lambda *args, vote=knn.vote: predicted.append(vote(*args)) or predicted[-1])
    task = KNearestNeighbours(None, object(), k=3)
    result = task.run(task_inputs({("data", "image"): KNN_TEST, ("train", "image"): KNN_TRAIN}))
    assert predicted[0].tolist() == [1, 2, 2, 0]
    assert result.metrics == pytest.approx({"accuracy": 3 / 4})
    assert result.details == {"k": 3, "representation": "projected", "train_items": 5, "test_items": 4}
    assert task.needs() == {"data": {"image"}, "train": {"image"}}
    with pytest.raises(FlavaKitError, match="k = 6 neighbours, but there are only 5 training items"):
        KNearestNeighbours(None, object(), k=6).run(task_inputs({("data", "image"): KNN_TEST, ("train", "image"): KNN_TRAIN}))


def test_retrieval_by_hand(tmp_path):
    # Texts are one-hot, so similarity[i, j] = image i's coordinate j.
    images = [[1, 0, 0], [0.6, 0, 0.8], [0, 0.28, 0.96]]
    # image -> text: true scores 1, 0, .96 with 0, 2, 0 texts above; text -> image: columns [1, .6, 0], [0, 0, .28],
    # [0, .8, .96]: 0, 1, 0 images above their true match.
    data = {("data", "image"): features([-1] * 3, projected=images), ("data", "text"): features([-1] * 3, projected=np.eye(3))}
    result = Retrieval(None, ks=(1, 2, 3)).run(task_inputs(data))
    assert result.metrics == pytest.approx({"image_to_text_R@1": 2 / 3, "image_to_text_R@2": 2 / 3, "image_to_text_R@3": 1.0,
                                            "text_to_image_R@1": 2 / 3, "text_to_image_R@2": 1.0, "text_to_image_R@3": 1.0})  # fmt: skip
    assert result.details == {"pairs": 3}
    result.pictures["recall_at_k.png"](tmp_path / "recall.png")
    assert (tmp_path / "recall.png").stat().st_size > 0
    data[("data", "text")] = features([-1] * 3, keys=["item-0", "item-2", "item-1"], projected=np.eye(3))
    with pytest.raises(FlavaKitError, match="first differ at row 1"):
        Retrieval(None).run(task_inputs(data))


def separable(rows: int, seed: int, dims: int = 8) -> Features:
    """Two classes around +3 and -3 on the first axis, noise 0.3: separable with a wide margin."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 2
    cls = rng.normal(0, 0.3, (rows, dims)) + np.where(labels[:, None] == 0, 3.0, -3.0) * np.eye(dims)[0]
    return features(labels, cls=cls)


@pytest.mark.parametrize("method, chosen", [("lbfgs", "C"), ("torch", "weight_decay")])
def test_linear_probe_reaches_perfect_accuracy_on_separable_features(tmp_path, method, chosen):
    test = separable(20, 1)
    np.save(tmp_path / "cls.npy", test.representations["cls"])
    test.representations["cls"] = np.load(tmp_path / "cls.npy", mmap_mode="r")  # as the feature cache hands them over
    task = LinearProbe(None, object(), method=method, costs=(0.1, 1.0))
    result = task.run(task_inputs({("data", "image"): test, ("train", "image"): separable(40, 0)}))
    assert result.metrics == {"accuracy": 1.0}
    assert result.details["method"] == method and result.details["train_items"] == 40 and result.details["test_items"] == 20
    assert result.details[chosen] in ((0.1, 1.0) if method == "lbfgs" else (0.0, 1e-4, 1e-2))


def test_linear_probe_splits_rows_deterministically_and_picks_a_method_by_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(linear_probe, "linear_probe", lambda *args: calls.append(("lbfgs", args)) or {"accuracy": 0.5, "C": 1.0})
    monkeypatch.setattr(linear_probe, "torch_linear_probe", lambda *args, **_: calls.append(("torch", args)) or {"accuracy": 0.5, "weight_decay": 0})
    data = features(np.arange(10) % 2, cls=np.arange(10)[:, None] * np.ones((1, 4)))  # row i is all i
    train, test = split_rows(10, 0.3, 7)
    for seed in (7, 7):
        result = LinearProbe(None, train_share=0.3, seed=seed).run(task_inputs({("data", "image"): data}))
        assert result.details == {"C": 1.0, "method": "lbfgs", "representation": "cls", "train_items": 3, "test_items": 7}
        method, (train_x, train_y, test_x, test_y, *_) = calls.pop()
        assert train_x[:, 0].tolist() == train.tolist() and test_x[:, 0].tolist() == test.tolist() and train_y.tolist() == (train % 2).tolist()
    assert split_rows(10, 0.3, 8)[0].tolist() != train.tolist()  # the seed matters
    big = features(np.arange(40) % 2, cls=np.zeros((40, 4096)))  # 40 x 4096 float64 = 1.25 MiB
    for budget, expected in ((1, "torch"), (2, "lbfgs")):
        result = LinearProbe(None, object(), lbfgs_memory_mb=budget).run(task_inputs({("data", "image"): big, ("train", "image"): big}))
        assert calls.pop()[0] == expected and result.details["method"] == expected


@pytest.fixture
def folder(tmp_path):
    """A labelled folder of two classes, two 8x8 PNGs each."""
    for name, colour in (("cat", "red"), ("dog", "blue")):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (8, 8), colour).save(tmp_path / name / f"{i}.png")
    return {"type": "labelled_folder", "root": str(tmp_path)}


@pytest.mark.parametrize("name, extra, needs", [
    ("zero_shot_classification", {"templates": ["a {}"], "ks": [1, 3]}, {"data": {"image"}}),
    ("linear_probe", {"method": "torch", "costs": [1.0]}, {"data": {"image"}, "train": {"image"}}),
    ("knn", {"k": 1}, {"data": {"image"}, "train": {"image"}}),
    ("retrieval", {"ks": [1, 2], "chunk": 2}, {"data": {"image", "text"}}),
    ("feature_norm", {"representation": "projected"}, {"data": {"image"}}),
])  # fmt: skip
def test_tasks_are_registered_and_built_from_recipe_nodes(folder, name, extra, needs):
    cls = registry.get("task", name)
    node = {"type": name, "data": folder, **({"train": folder} if "train" in needs else {}), **extra}
    task = build_node(node, kind="task", path="tasks.x")
    assert isinstance(task, cls) and task.needs() == needs and task.version == 1
    assert task.data.class_names == ["cat", "dog"] and len(task.data) == 4
    with pytest.raises(ValueError, match="bogus\n.*Extra inputs are not permitted"):  # pydantic's ValidationError
        build_node({**node, "bogus": 1}, kind="task", path="tasks.x")


@pytest.mark.parametrize("name, bad, message", [
    ("knn", {"k": 0}, "greater than or equal to 1"),
    ("linear_probe", {"train_share": 1.0}, "less than 1"),
    ("zero_shot_classification", {"templates": ["a photo"]}, "must hold one '{}'"),
    ("retrieval", {"ks": [0]}, "greater than 0"),
])  # fmt: skip
def test_bad_task_parameters_are_rejected(folder, name, bad, message):
    with pytest.raises((ValueError, FlavaKitError), match=message):  # the schema's check, or the constructor's
        build_node({"type": name, "data": folder, **bad}, kind="task", path="tasks.x")


def test_plugin_task_is_found_and_computes_the_mean_norm(folder):
    entry = registry.entry("task", "feature_norm")
    assert entry.provenance.origin == "plug-in" and entry.provenance.distribution == "flava_kit_demo_plugin"
    task = build_node({"type": "feature_norm", "data": folder}, kind="task", path="tasks.x")
    result = task.run(task_inputs({("data", "image"): features([0, 1], cls=[[3, 4], [0, 1]])}))
    assert result.metrics == pytest.approx({"mean_norm": (5 + 1) / 2})
