"""Evaluation metrics against hand-computed cases; chunked retrieval equals the dense computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flava_kit.evaluation import classification_report, linear_probe, retrieval_recall_at


def test_top_k_accuracy_and_mean_per_class_recall_by_hand():
    # 3 classes, 5 images; rows are class scores.
    scores = torch.tensor([
        [0.9, 0.05, 0.05],  # label 0: top-1 right
        [0.1, 0.2, 0.7],    # label 0: 0 is last -> wrong at top-1 and top-2
        [0.3, 0.6, 0.1],    # label 1: right
        [0.5, 0.4, 0.1],    # label 1: second -> right at top-2 only
        [0.2, 0.3, 0.5],    # label 2: right
    ])  # fmt: skip
    labels = torch.tensor([0, 0, 1, 1, 2])
    report = classification_report(scores, labels, ks=(1, 2, 5))
    assert report["acc@1"] == pytest.approx(3 / 5)
    assert report["acc@2"] == pytest.approx(4 / 5)
    assert report["acc@5"] == 1.0  # k beyond the number of classes: every class counts
    assert report["mean_per_class_recall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)


def test_retrieval_recall_by_hand():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    texts = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])  # pairs 1 and 2 are swapped
    result = retrieval_recall_at(images, texts, ks=(1, 2))
    assert result["image_to_text_R@1"] == pytest.approx(1 / 3) and result["image_to_text_R@2"] == 1.0
    assert result["text_to_image_R@1"] == pytest.approx(1 / 3) and result["text_to_image_R@2"] == 1.0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), chunk=st.integers(1, 17), seed=st.integers(0, 1000))
def test_chunked_retrieval_equals_the_dense_computation(n, chunk, seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.normalize(torch.randn(n, 8, generator=generator), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(n, 8, generator=generator), dim=-1)
    dense = images @ texts.T
    truth = torch.arange(n)
    for direction, scores in (("image_to_text", dense), ("text_to_image", dense.T)):
        ranks = (scores > scores[truth, truth][:, None]).sum(1)
        for k in (1, 5, 10):
            expected = (ranks < k).float().mean().item()
            assert retrieval_recall_at(images, texts, chunk=chunk)[f"{direction}_R@{k}"] == pytest.approx(expected)


def test_linear_probe_learns_separable_features_and_reports_its_regularisation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 3
    labels = rng.integers(0, 3, 300)
    features = centres[labels] + rng.normal(size=(300, 16))
    result = linear_probe(features[:200], labels[:200], features[200:], labels[200:])
    assert result["accuracy"] > 0.95 and result["C"] in (0.01, 0.1, 1.0, 10.0, 100.0)
    noise = linear_probe(rng.normal(size=(200, 16)), labels[:200], rng.normal(size=(100, 16)), labels[200:])
    assert noise["accuracy"] < 0.6  # nothing to learn: near chance


def test_torch_probe_learns_from_a_memory_map_and_chooses_a_weight_decay(tmp_path):
    from flava_kit.evaluation import torch_linear_probe

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 8)) * 3
    labels = rng.integers(0, 4, 500)
    np.save(tmp_path / "features.npy", (centres[labels] + rng.normal(size=(500, 8))).astype(np.float32))
    with warnings.catch_warnings():  # a read-only memory map: torch warns that it will not write to it
        warnings.simplefilter("ignore", UserWarning)
        features = torch.from_numpy(np.load(tmp_path / "features.npy", mmap_mode="r"))  # read a batch at a time
    labels = torch.from_numpy(labels)
    result = torch_linear_probe(features[:400], labels[:400], features[400:], labels[400:], epochs=20, batch_size=64)
    assert result["accuracy"] > 0.9 and result["weight_decay"] in (0.0, 1e-4, 1e-2)


def test_image_features_representations():
    """What evaluation caches per image: the normalised projection and the [CLS] before projection."""
    import flava_kit
    from flava_kit.checkpoints.loading import LoadedModel
    from flava_kit.evaluation.encode import image_representations
    from PIL import Image

    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny").eval()
    loaded = LoadedModel(model, None, model.image_encoder.image_size, 16, source="test")
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue", "green")]
    pixels = loaded.processor()(images, codebook=False)["pixel_values"]
    found = {name: torch.from_numpy(value) for name, value in image_representations(loaded, pixels).items()}
    assert found["projected"].shape == (3, model.image_projection.out_features)
    assert torch.allclose(found["projected"].norm(dim=-1), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        expected = model(pixel_values=pixels).image_embeddings[:, 0]
    assert found["cls"].shape == (3, model.image_encoder.hidden_size) and torch.allclose(found["cls"], expected, atol=1e-5)
