"""CLIP_benchmark's webdataset layout read natively, and retrieval with several captions per image.

The datasets are written here by clip_benchmark's own exporter (``clip_benchmark.webdataset_builder``,
what ``clip_benchmark_export_wds`` runs): a classification set (``classnames.txt``, templates, a
``test`` and a ``train`` split) and a retrieval set with five captions per image. They are
evaluated through eval recipes and ``flava-kit eval``, and the same folders through clip_benchmark's
``wds`` builder and its ``zeroshot_classification`` / ``zeroshot_retrieval`` code give the same numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flava_kit.cli import main
from flava_kit.data.sources import DataError, WebDatasetSource
from flava_kit.data.synthetic import class_names, vocabulary
from flava_kit.evaluation.metrics import caption_matches, retrieval_ranks, retrieval_recall_at
from shards import synthetic_items

TEMPLATES = ["a photo of a {c}", "the {c}", "a picture of the {c}"]
"""The classification set's prompts, in CLIP_benchmark's form: not flava_kit's default ones."""
CAPTIONS_PER_IMAGE = 5
KS = (1, 5, 10)
TOLERANCE = 1e-6


def distinct_captions(count: int, seed: int = 0) -> list[str]:
    """``count`` different captions of vocabulary words: identical captions tie, and a tie is where
    the two implementations may rank differently (ours counts it for the true match)."""
    rng, words, found = random.Random(seed), vocabulary(), {}
    while len(found) < count:
        found.setdefault(" ".join(rng.choices(words, k=rng.randint(3, 6))), None)
    return list(found)


def export(write, *args, **kwargs) -> None:
    """Run one of clip_benchmark's exporters quietly (it prints, and warns about its 8 workers)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write(*args, max_count=16, verbose=False, **kwargs)


class Exported(list):
    """What clip_benchmark's exporter takes: (image bytes, label or captions) pairs, with ``classes`` and ``templates``."""

    classes: list[str] | None = None
    templates: list[str] | None = None


@pytest.fixture(scope="module")
def wds(tmp_path_factory) -> Path:
    """``cls/``: 36 one-shape images (a test and a train split of them, 3 shards each), the shapes'
    classes and :data:`TEMPLATES`; ``ret/``: 12 images with five distinct captions each (2 shards)."""
    from clip_benchmark.webdataset_builder import PIL_to_bytes, convert_dataset, convert_retrieval_dataset

    root, to_bytes = tmp_path_factory.mktemp("wds"), PIL_to_bytes("webp")
    for split, seed in (("test", 0), ("train", 1)):
        items = [item for item in synthetic_items(90, seed=seed) if item["label"] >= 0][:36]
        dataset = Exported((to_bytes(item["image"]), item["label"]) for item in items)
        dataset.classes, dataset.templates = class_names(), TEMPLATES
        export(convert_dataset, dataset, split, str(root / "cls"))
    images = [item["image"] for item in synthetic_items(12, seed=2)]
    captions = distinct_captions(len(images) * CAPTIONS_PER_IMAGE)
    pairs = Exported((to_bytes(image), captions[i * CAPTIONS_PER_IMAGE : (i + 1) * CAPTIONS_PER_IMAGE]) for i, image in enumerate(images))
    export(convert_retrieval_dataset, pairs, "test", str(root / "ret"))
    return root


def run_eval(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_exporters_layout_is_read_as_its_split_s_shards_with_names_prompts_and_captions(wds):
    test, train = WebDatasetSource(str(wds / "cls"), shuffle=0), WebDatasetSource(str(wds / "cls"), split="train", shuffle=0)
    assert [Path(s).relative_to(wds).as_posix() for s in test.shards] == ["cls/test/0.tar", "cls/test/1.tar", "cls/test/2.tar"]
    assert Path(train.shards[0]).parent.name == "train" and test.class_names == class_names()
    assert test.templates == ["a photo of a {}", "the {}", "a picture of the {}"]
    first = test.decode(next(iter(test.read_shard(test.shards[0]))))
    assert set(first) == {"key", "image", "label"} and first["key"] == "s0000000"  # no text asked of a classification set
    retrieval = WebDatasetSource(str(wds / "ret"), shuffle=0)
    item = retrieval.decode(next(iter(retrieval.read_shard(retrieval.shards[0]))))
    assert len(item["captions"]) == CAPTIONS_PER_IMAGE and item["text"] == item["captions"][0] and "label" not in item
    assert retrieval.class_names is None and retrieval.templates is None


def test_layout_mistakes_name_the_file_and_what_to_do(wds, tmp_path):
    with pytest.raises(DataError, match=r"has no split 'validation' .*its splits: test, train"):
        WebDatasetSource(str(wds / "cls"), split="validation")
    with pytest.raises(DataError, match="split 'test' is for a CLIP_benchmark folder"):
        WebDatasetSource(str(next((wds / "cls" / "test").glob("0.tar"))), split="test")
    broken = tmp_path / "broken"
    (broken / "test").mkdir(parents=True)
    (broken / "test" / "nshards.txt").write_text("1\n")
    (broken / "dataset_type.txt").write_text("multilabel\n")
    with pytest.raises(DataError, match=r"says 'multilabel' \(labels in KEY.npy"):
        WebDatasetSource(str(broken))
    (broken / "dataset_type.txt").unlink()
    (broken / "zeroshot_classification_templates.txt").write_text("a photo of a {c}\na photo\n")
    with pytest.raises(DataError, match=r"templates.txt line 2 \('a photo'\) has no '\{c\}'"):
        WebDatasetSource(str(broken))
    (broken / "zeroshot_classification_templates.txt").unlink()
    (broken / "classnames.txt").write_text("cat\n\ndog\n")
    with pytest.raises(DataError, match="classnames.txt line 2 is blank"):
        WebDatasetSource(str(broken))


def clip_benchmark_numbers(run_dir: Path, wds: Path, batch_size: int) -> tuple[dict, torch.Tensor, torch.Tensor, list, list]:
    """clip_benchmark on the same folders and model: its ``wds`` builder, its zero-shot classifier and
    classification loop (not its ``evaluate()``: clip-benchmark 1.6.2's ``accuracy()`` calls
    ``float()`` on an array, which NumPy 2.4 refuses), and its ``zeroshot_retrieval.evaluate``."""
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    from flava_kit.evaluation.clip_benchmark import load_for_clip_benchmark

    model, transform, tokenizer = load_for_clip_benchmark(str(run_dir))
    classes = build_dataset("wds/cls", root=str(wds / "cls"), transform=transform, split="test", task="zeroshot_classification")
    loader = torch.utils.data.DataLoader(classes.batched(batch_size), batch_size=None)
    classifier = zeroshot_classification.zero_shot_classifier(model, tokenizer, classes.classes, classes.templates, "cpu", amp=False)
    logits, target = zeroshot_classification.run_classification(model, classifier, loader, "cpu", amp=False)
    captions = build_dataset("wds/ret", root=str(wds / "ret"), transform=transform, split="test", task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(captions.batched(batch_size), batch_size=None)
    recalls = zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=list(KS))
    return recalls, logits, target, classes.classes, classes.templates


def test_eval_recipe_on_the_layout_takes_its_classes_and_prompts_and_equals_clip_benchmark(run_dir, wds, tmp_path, capsys):
    recipe = tmp_path / "wds_eval.yaml"
    recipe.write_text(f"""
tasks:
  zero_shot: {{type: zero_shot_classification, data: {{type: webdataset, urls: {wds}/cls}}, ks: [1, 5]}}
  probe: {{type: linear_probe, data: {{type: webdataset, urls: {wds}/cls}}, train: {{type: webdataset, urls: {wds}/cls, split: train}}}}
  knn: {{type: knn, data: {{type: webdataset, urls: {wds}/cls, split: test}}, train: {{type: webdataset, urls: {wds}/cls, split: train}}, k: 3}}
  retrieval: {{type: retrieval, data: {{type: webdataset, urls: {wds}/ret}}, ks: [1, 5, 10]}}
settings: {{batch_size: 8}}
""")
    code, out, err = run_eval(capsys, str(run_dir), str(recipe), "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    ours = results["results"][run_dir.name]
    assert {name: task["items"]["data"]["rows"] for name, task in results["tasks"].items()} == {"zero_shot": 36, "probe": 36, "knn": 36,
                                                                                                 "retrieval": 12}  # fmt: skip
    assert ours["probe"]["details"]["train_items"] == 36 and "| retrieval " in out
    zero_shot = ours["zero_shot"]["details"]
    assert (zero_shot["class_names_from"], zero_shot["templates_from"]) == ("dataset", "dataset")
    assert zero_shot["class_names"] == (wds / "cls" / "classnames.txt").read_text().splitlines() == class_names()
    assert zero_shot["templates"] == [template.replace("{c}", "{}") for template in TEMPLATES]
    # every caption a text query: 12 images x 5
    assert ours["retrieval"]["details"] == {"pairs": 60, "images": 12, "captions_per_image": [5]}
    assert ours["retrieval"]["encoded"] == {"data:image": 12, "data:text": 12}

    recalls, logits, target, classes, templates = clip_benchmark_numbers(run_dir, wds, batch_size=8)
    assert classes == zero_shot["class_names"] and [t.replace("{c}", "{}") for t in templates] == zero_shot["templates"]
    predicted = logits.argmax(1)
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long).index_put_((target, predicted), torch.ones_like(target), accumulate=True)
    assert zero_shot["confusion"] == confusion.tolist()
    assert ours["zero_shot"]["metrics"]["accuracy"] == pytest.approx((predicted == target).float().mean().item(), abs=TOLERANCE)
    for k in KS:  # clip_benchmark's image_retrieval is text -> image, its text_retrieval image -> text
        assert ours["retrieval"]["metrics"][f"text_to_image_R@{k}"] == pytest.approx(recalls[f"image_retrieval_recall@{k}"], abs=TOLERANCE)
        assert ours["retrieval"]["metrics"][f"image_to_text_R@{k}"] == pytest.approx(recalls[f"text_retrieval_recall@{k}"], abs=TOLERANCE)
    # the numbers are not trivially 1: some query misses at k = 1 (else any ranking would pass)
    assert min(ours["retrieval"]["metrics"][f"{d}_R@1"] for d in ("image_to_text", "text_to_image")) < 1


def test_the_layout_by_hub_id_and_a_recipe_s_own_prompts_win(run_dir, wds, tmp_path, monkeypatch, capsys):
    import shutil

    cache = tmp_path / "hub"
    snapshot = cache / "datasets--clip-benchmark--wds_shapes" / "snapshots" / "0123abcd"
    shutil.copytree(wds / "cls", snapshot)
    (cache / "datasets--clip-benchmark--wds_shapes" / "refs").mkdir()
    (cache / "datasets--clip-benchmark--wds_shapes" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    recipe = tmp_path / "by_id.yaml"
    recipe.write_text("""
tasks:
  by_id: {type: zero_shot_classification, data: {type: webdataset, urls: clip-benchmark/wds_shapes}}
  own_prompts: {type: zero_shot_classification, data: {type: webdataset, urls: clip-benchmark/wds_shapes}, templates: ["a {}"],
                class_names: [r, s, t, u, v, w, x, y, z, zz, zzz, zzzz]}
""")
    code, _, err = run_eval(capsys, str(run_dir), str(recipe), "--out", str(tmp_path / "out"))
    assert code == 0, err
    ours = json.loads((tmp_path / "out" / "results.json").read_text())["results"][run_dir.name]
    assert ours["by_id"]["details"]["templates_from"] == "dataset" and ours["by_id"]["details"]["class_names"] == class_names()
    own = ours["own_prompts"]["details"]
    assert (own["templates"], own["templates_from"], own["class_names_from"], own["class_names"][0]) == (["a {}"], "recipe", "recipe", "r")


def test_a_missing_split_stops_the_cli_naming_it(run_dir, wds, tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"tasks:\n  zero_shot: {{type: zero_shot_classification, data: {{type: webdataset, urls: {wds}/cls, split: val}}}}\n")
    code, _, err = run_eval(capsys, str(run_dir), str(recipe))
    assert code == 2 and "tasks.zero_shot" in err and "no split 'val'" in err and "Traceback" not in err


def test_a_manifest_and_an_hf_dataset_with_caption_lists_score_as_the_layout_does(run_dir, wds, tmp_path, capsys):
    import datasets

    source = WebDatasetSource(str(wds / "ret"), shuffle=0)
    items = [source.decode(raw) for shard in source.shards for raw in source.read_shard(shard)]
    lines = []
    for item in items:
        item["image"].save(tmp_path / f"{item['key']}.png")
        lines.append(json.dumps({"image": f"{item['key']}.png", "text": item["captions"]}))
    (tmp_path / "captions.jsonl").write_text("\n".join(lines))
    datasets.Dataset.from_dict({"image": [i["image"] for i in items], "sentences": [i["captions"] for i in items]}).save_to_disk(str(tmp_path / "saved"))
    recipe = tmp_path / "three.yaml"
    recipe.write_text(f"""
tasks:
  wds: {{type: retrieval, data: {{type: webdataset, urls: {wds}/ret}}}}
  manifest: {{type: retrieval, data: {{type: manifest, path: {tmp_path}/captions.jsonl}}}}
  saved: {{type: retrieval, data: {{type: hf_dataset, path: {tmp_path}/saved, text_column: sentences}}}}
""")
    code, _, err = run_eval(capsys, str(run_dir), str(recipe), "--out", str(tmp_path / "out"))
    assert code == 0, err
    ours = json.loads((tmp_path / "out" / "results.json").read_text())["results"][run_dir.name]
    assert {name: result["details"]["pairs"] for name, result in ours.items()} == dict.fromkeys(ours, 60)
    for name in ("manifest", "saved"):  # the same images (as PNGs: webp lossless) and captions
        assert ours[name]["metrics"] == pytest.approx(ours["wds"]["metrics"], abs=TOLERANCE)
    # flava-kit embed writes a text row per caption, each under its item's key
    assert main(["embed", str(run_dir), "--manifest", str(tmp_path / "captions.jsonl"), "--out", str(tmp_path / "emb")]) == 0
    from safetensors.torch import load_file

    embeddings = load_file(tmp_path / "emb" / "embeddings.safetensors")
    assert embeddings["image"].shape == (12, 16) and embeddings["text"].shape == (60, 16)
    text_keys = (tmp_path / "emb" / "text_keys.txt").read_text().splitlines()
    assert text_keys[:6] == ["captions.jsonl:1"] * 5 + ["captions.jsonl:2"] and len(text_keys) == 60
    assert (tmp_path / "emb" / "keys.txt").read_text().splitlines() == [f"captions.jsonl:{line}" for line in range(1, 13)]


def test_rerank_refuses_several_captions_per_image(run_dir, wds, tmp_path, capsys):
    recipe = tmp_path / "rerank.yaml"
    recipe.write_text(f"tasks:\n  retrieval: {{type: retrieval, data: {{type: webdataset, urls: {wds}/ret}}, rerank: 3}}\n")
    code, _, err = run_eval(capsys, str(run_dir), str(recipe), "--out", str(tmp_path / "out"))
    assert code == 2 and "re-ranking scores one text per item, but these 12 images have 60 captions" in err


# ---- the multi-caption recall itself ------------------------------------------------------------


def clip_benchmark_recalls(images: torch.Tensor, texts: torch.Tensor, owners: torch.Tensor, ks: list[int]) -> dict[str, float]:
    """Recall@k as clip_benchmark's ``zeroshot_retrieval.evaluate`` computes it from embeddings
    (its own ``recall_at_k`` and ``batchify``, the code past the encoders), in our metric names."""
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    scores = texts @ images.T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), owners] = True
    results = {}
    for k in ks:
        results[f"text_to_image_R@{k}"] = (batchify(recall_at_k, scores, positive, 3, "cpu", k=k) > 0).float().mean().item()
        results[f"image_to_text_R@{k}"] = (batchify(recall_at_k, scores.T, positive.T, 3, "cpu", k=k) > 0).float().mean().item()
    return results


@st.composite
def caption_sets(draw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(images [N, D], texts [T, D], owners [T], chunk): 1-5 captions per image, in a shuffled order."""
    counts = draw(st.lists(st.integers(1, 5), min_size=1, max_size=12))
    seed, dims, chunk = draw(st.integers(0, 10_000)), draw(st.integers(2, 8)), draw(st.integers(1, 7))
    generator = torch.Generator().manual_seed(seed)
    owners = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    owners = owners[torch.randperm(len(owners), generator=generator)]
    images = torch.nn.functional.normalize(torch.randn(len(counts), dims, generator=generator), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(len(owners), dims, generator=generator), dim=-1)
    return images, texts, owners, chunk


@settings(max_examples=60, deadline=None)
@given(caption_sets())
def test_multi_caption_recall_equals_clip_benchmark_s_in_chunks(case):
    images, texts, owners, chunk = case
    ks = [k for k in KS if k <= min(len(images), len(texts))]  # its topk needs k candidates
    theirs = clip_benchmark_recalls(images, texts, owners, ks)
    ours = retrieval_recall_at(images, texts, ks=ks, chunk=chunk, owners=owners)
    assert ours == pytest.approx(theirs, abs=TOLERANCE)


@settings(max_examples=60, deadline=None)
@given(caption_sets())
def test_multi_caption_recall_invariants(case):
    images, texts, owners, chunk = case
    # integer-valued features: exact arithmetic, so ties (a caption and its copy above all) are exact ties
    images, texts = (images * 3).round().double(), (texts * 3).round().double()
    ks = (1, 2, 3, 4, 5, 8, 10)
    # one caption per image: the same numbers as pairs without owners (the single-caption metric)
    single = retrieval_recall_at(images, texts[: len(images)], ks=ks, chunk=chunk)
    assert retrieval_recall_at(images, texts[: len(images)], ks=ks, chunk=chunk, owners=torch.arange(len(images))) == single
    # every caption twice: each caption query ranks as before; above an image's best caption stand
    # twice the captions, so its recall@2k after is its recall@k before (and recall@1 is unchanged)
    before = retrieval_recall_at(images, texts, ks=ks, chunk=chunk, owners=owners)
    doubled = retrieval_recall_at(images, torch.cat([texts, texts]), ks=(*ks, *(2 * k for k in ks)), chunk=chunk,
                                  owners=torch.cat([owners, owners]))  # fmt: skip
    for k in ks:
        assert doubled[f"text_to_image_R@{k}"] == pytest.approx(before[f"text_to_image_R@{k}"])
        assert doubled[f"image_to_text_R@{2 * k}"] == pytest.approx(before[f"image_to_text_R@{k}"])
    assert doubled["image_to_text_R@1"] == before["image_to_text_R@1"]
    # an image's captions in any order of rows: the same numbers
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(chunk))
    assert retrieval_recall_at(images, texts[order], ks=ks, chunk=chunk, owners=owners[order]) == pytest.approx(before)


def test_caption_matches_groups_each_image_s_captions_in_row_order():
    matches = caption_matches(torch.tensor([1, 0, 1, 2, 1]), 3)
    assert matches.tolist() == [[1, -1, -1], [0, 2, 4], [3, -1, -1]]
    with pytest.raises(ValueError, match="1 of the 3 have none"):
        caption_matches(torch.tensor([0, 0, 2]), 3)
    with pytest.raises(ValueError, match="names image 3, but the images are 0..2"):
        caption_matches(torch.tensor([0, 1, 2, 3]), 3)
    assert np.array_equal(caption_matches(torch.arange(4), 4).numpy(), np.arange(4)[:, None])


def test_an_image_s_best_caption_tied_into_its_shortlist_is_on_it():
    # captions 0-2 tie at the top; the image's own are 2 and 3: nothing scores above caption 2, so it is rank 0 and listed
    image, captions = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks, shortlist = retrieval_ranks(image, captions, shortlist=2, matches=torch.tensor([[3, 2]]))
    assert ranks.tolist() == [0] and 2 in shortlist[0].tolist()
    ranks, shortlist = retrieval_ranks(image, captions, shortlist=2, matches=torch.tensor([[3, -1]]))
    assert ranks.tolist() == [3] and 3 not in shortlist[0].tolist()  # rank 3: behind a list of 2
