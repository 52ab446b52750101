"""What downstream tasks need from the sources that read named fields (manifest, hf_dataset,
webdataset): a second text (``text_pair``), a question with every annotator's ``answers``, a
label given as a class name; from a recipe and the CLI too; broken rows named by place and field."""

from __future__ import annotations

import csv
import io
import itertools
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from flava_kit.data.sources import DataError, ImageTextManifest, IndexedSource, WebDatasetSource, hf_dataset
from tests.test_recipes_through_cli import cli, write

NLI = ["entailment", "neutral", "contradiction"]
VQA_ANSWERS = ["yes", "yes", "no", "yes", "yes", "maybe", "yes", "no", "yes", "yes"]  # ten annotators, repeats kept


def picture(index: int, size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), (40 * index % 256, 90, 200 - 30 * index % 200))


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    picture(index).save(buffer, format="PNG")
    return buffer.getvalue()


def every_item(source) -> list[dict]:
    """One epoch of ``source`` (indexed, or shards with a sizes.json), sorted by key."""
    if isinstance(source, IndexedSource):
        return sorted((source.read(i) for i in range(len(source))), key=lambda item: item["key"])
    stream = source.samples(0, 1, 0)
    return sorted((source.decode(raw) for raw, _ in itertools.islice(stream, source.size)), key=lambda item: item["key"])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_tar(path: Path, samples: dict[str, dict[str, bytes]]) -> str:
    """A webdataset shard: ``KEY.EXT`` per file of each sample, with a ``sizes.json`` beside it."""
    with tarfile.open(path, "w") as tar:
        for key, files in samples.items():
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    sizes = path.parent / "sizes.json"
    known = json.loads(sizes.read_text()) if sizes.is_file() else {}
    sizes.write_text(json.dumps({**known, path.name: len(samples)}))
    return str(path)


@pytest.fixture
def images(tmp_path) -> list[str]:
    """Four PNGs beside the manifests, by their names relative to tmp_path."""
    names = []
    for index in range(4):
        (tmp_path / f"img{index}.png").write_bytes(png(index))
        names.append(f"img{index}.png")
    return names


# --- manifest -------------------------------------------------------------------------------------


def test_manifest_jsonl_and_csv_sentence_pairs_with_class_names(tmp_path, images):
    rows = [{"picture": images[i], "premise": f"premise {i}", "hypothesis": f"hypothesis {i}", "gold": NLI[i % 3]} for i in range(3)]
    rows.append({"picture": images[3], "premise": "premise 3", "hypothesis": "hypothesis 3", "gold": ""})  # a line without its label
    (tmp_path / "classes.txt").write_text("\n".join(NLI) + "\n\n")
    settings = {"image_field": "picture", "text_field": "premise", "text_pair_field": "hypothesis", "label_field": "gold"}
    jsonl = ImageTextManifest(str(write_jsonl(tmp_path / "nli.jsonl", rows)), class_names=NLI, **settings)
    csv_source = ImageTextManifest(str(write_csv(tmp_path / "nli.csv", rows)), class_names=str(tmp_path / "classes.txt"), **settings)
    assert jsonl.class_names == csv_source.class_names == NLI
    for source, first_line in ((jsonl, 1), (csv_source, 2)):
        items = [source.read(i) for i in range(4)]
        assert [item["key"] for item in items] == [f"{source.path.name}:{first_line + i}" for i in range(4)]
        assert [item["text_pair"] for item in items] == [f"hypothesis {i}" for i in range(4)]
        assert [item.get("label") for item in items] == [0, 1, 2, None]
        assert items[0]["text"] == "premise 0" and items[2]["image"].mode == "RGB"
        assert items[2]["image"].getpixel((0, 0)) == picture(2).getpixel((0, 0))
    numbered = ImageTextManifest(str(write_jsonl(tmp_path / "numbered.jsonl", [{"image": images[0], "text": "a", "label": "2"}])))
    assert numbered.read(0)["label"] == 2 and not hasattr(numbered, "class_names")  # an int-like string, no names needed


def test_manifest_vqa_rows_jsonl_lists_and_csv_json_cells(tmp_path, images):
    jsonl = write_jsonl(tmp_path / "vqa.jsonl", [{"image": images[0], "question": "is it red?", "answers": VQA_ANSWERS}])
    layout = [{"answer": answer, "answer_confidence": "yes", "answer_id": i + 1} for i, answer in enumerate(VQA_ANSWERS)]  # HF's VQAv2
    table = write_csv(tmp_path / "vqa.csv", [{"image": images[1], "question": "what colour?", "answers": json.dumps(VQA_ANSWERS)},
                                              {"image": images[2], "question": "is it blue?", "answers": json.dumps(layout)}])  # fmt: skip
    for path in (jsonl, table):
        source = ImageTextManifest(str(path), text_field="question", answers_field="answers")
        for index in range(len(source)):
            item = source.read(index)
            assert item["answers"] == VQA_ANSWERS and item["text"].endswith("?") and item["image"].size == (16, 16)
            assert set(item) == {"key", "image", "text", "answers"}  # no label column: no label


def test_a_text_only_pair_manifest(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"sentence1": "a cat sits", "sentence2": "an animal sits", "label": 0},
                                                    {"sentence1": "a dog runs", "sentence2": "", "label": 1}])  # fmt: skip
    source = ImageTextManifest(str(path), image_field=None, text_field="sentence1", text_pair_field="sentence2")
    assert [source.read(i) for i in range(2)] == [{"key": "pairs.jsonl:1", "text": "a cat sits", "text_pair": "an animal sits", "label": 0},
                                                   {"key": "pairs.jsonl:2", "text": "a dog runs", "text_pair": "", "label": 1}]  # fmt: skip
    with pytest.raises(DataError, match="both null"):
        ImageTextManifest(str(path), image_field=None, text_field=None)
    with pytest.raises(DataError, match="text_pair_field is set but text_field is null"):
        ImageTextManifest(str(path), text_field=None, text_pair_field="sentence2")


def test_existing_manifests_read_as_before(tmp_path, images):
    rows = [{"image": images[0], "text": "a red square", "label": 3}, {"image": images[1], "text": "x"},
            {"image": images[2], "text": "y", "label": 2.0}, {"image": images[3], "text": "z", "label": -1}]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    source = ImageTextManifest(str(path))
    assert {k: v for k, v in source.read(0).items() if k != "image"} == {"key": "pairs.jsonl:1", "text": "a red square", "label": 3}
    assert [source.read(i).get("label") for i in range(1, 4)] == [None, 2, None]  # -1: no label, as the synthetic data write it


# --- hf_dataset -----------------------------------------------------------------------------------


@pytest.fixture
def hf_data(tmp_path) -> Path:
    """A save_to_disk folder of image sentence pairs with a ClassLabel label (one unlabelled row, -1),
    and two parquet files of VQA rows with answers in HF's VQAv2 layout."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=NLI), "id": datasets.Value("string")})  # fmt: skip
    table = {"image": [picture(i) for i in range(4)], "premise": [f"premise {i}" for i in range(4)],
             "hypothesis": [f"hypothesis {i}" for i in range(4)], "label": [0, 2, 1, -1],
             "id": [f"pair-{i}" for i in range(4)]}  # fmt: skip
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "pairs"))
    answers = [[{"answer": a, "answer_confidence": "yes", "answer_id": j + 1} for j, a in enumerate(VQA_ANSWERS[i:] + VQA_ANSWERS[:i])]
               for i in range(6)]  # fmt: skip
    questions = [f"question {i}?" for i in range(6)]
    vqa = datasets.Dataset.from_dict({"image": [png(i) for i in range(6)], "question": questions, "answers": answers})
    vqa.select(range(3)).to_parquet(str(tmp_path / "vqa-0.parquet"))
    vqa.select(range(3, 6)).to_parquet(str(tmp_path / "vqa-1.parquet"))
    return tmp_path


def test_hf_dataset_saved_to_disk_pairs_take_class_names_from_the_class_label(hf_data):
    source = hf_dataset(str(hf_data / "pairs"), text_column="premise", text_pair_column="hypothesis", label_column="label", key_column="id")
    assert source.class_names == NLI
    items = every_item(source)
    assert [(item["key"], item["text_pair"], item.get("label")) for item in items] == [
        ("pair-0", "hypothesis 0", 0), ("pair-1", "hypothesis 1", 2), ("pair-2", "hypothesis 2", 1),
        ("pair-3", "hypothesis 3", None)]  # -1: the ClassLabel's "no label"
    assert items[1]["image"].getpixel((0, 0)) == picture(1).getpixel((0, 0))
    given = hf_dataset(str(hf_data / "pairs"), text_column="premise", label_column="label", class_names=["yes", "maybe", "no"])
    assert given.class_names == ["yes", "maybe", "no"]  # given names win over the feature's
    with pytest.raises(DataError, match=r"no column 'sentence2' \(text_pair_column\); its columns are image, premise"):
        hf_dataset(str(hf_data / "pairs"), text_column="premise", text_pair_column="sentence2")


def test_hf_dataset_parquet_streamed_with_answers_in_the_vqav2_layout(hf_data):
    pattern = str(hf_data / "vqa-*.parquet")
    streamed = hf_dataset(pattern, text_column="question", answers_column="answers", streaming=True, shuffle=2)
    items = [streamed.decode(raw) for raw, _ in itertools.islice(streamed.samples(0, 1, 0), 6)]
    assert sorted(item["key"] for item in items) == [f"vqa-{f}.parquet:{i}" for f in range(2) for i in range(3)]
    for item in items:
        shift = int(item["text"].split()[1].rstrip("?"))
        assert item["answers"] == VQA_ANSWERS[shift:] + VQA_ANSWERS[:shift] and item["image"].size == (16, 16)
    with pytest.raises(DataError, match=r"no column 'answer' \(answers_column\)"):
        hf_dataset(pattern, text_column="question", answers_column="answer", streaming=True)


def test_hf_dataset_answers_as_a_sequence_of_a_dict(tmp_path):
    """HF's ``Sequence`` of a dict holds a dict of lists: the same answers."""
    import datasets

    answers = datasets.Sequence({"answer": datasets.Value("string"), "answer_id": datasets.Value("int32")})
    features = datasets.Features({"question": datasets.Value("string"), "answers": answers})
    rows = {"question": ["is it?"], "answers": [{"answer": VQA_ANSWERS, "answer_id": list(range(10))}]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "seq"))
    source = hf_dataset(str(tmp_path / "seq"), image_column=None, text_column="question", answers_column="answers")
    assert source.read(0) == {"key": "0", "text": "is it?", "answers": VQA_ANSWERS}


# --- webdataset -----------------------------------------------------------------------------------


def test_webdataset_shards_with_a_text_pair_file_an_answers_file_and_named_labels(tmp_path):
    for shard in range(2):
        write_tar(tmp_path / f"{shard:05d}.tar", {
            f"s{shard}_{i}": {"png": png(i), "question.txt": f"question {i}?\n".encode(), "hypothesis.txt": f"hypothesis {i}".encode(),
                              "answers.json": json.dumps(VQA_ANSWERS[i:]).encode(), "cls": NLI[i].encode(), "json": b"{}"}
            for i in range(3)})  # fmt: skip
    urls = f"{tmp_path}/{{00000..00001}}.tar"
    source = WebDatasetSource(urls, text_ext="question.txt", text_pair_ext=".Hypothesis.TXT", answers_ext="answers.json", class_names=NLI)
    items = every_item(source)
    assert [item["key"] for item in items] == [f"s{s}_{i}" for s in range(2) for i in range(3)]
    for item in items:
        i = int(item["key"][-1])
        assert item == {**item, "text": f"question {i}?", "text_pair": f"hypothesis {i}", "answers": VQA_ANSWERS[i:], "label": i}
        assert item["image"].getpixel((0, 0)) == picture(i).getpixel((0, 0))
    assert source.class_names == NLI
    image_only = every_item(WebDatasetSource(urls, text_ext=None, label_ext=None))
    assert all(set(item) == {"key", "image"} for item in image_only)


# --- bad input: each a DataError naming the place and the field -----------------------------------


def _manifest(tmp_path, line: dict, **settings):
    (tmp_path / "img0.png").write_bytes(png(0))
    return ImageTextManifest(str(write_jsonl(tmp_path / "bad.jsonl", [{"image": "img0.png", "text": "fine"}, line])), **settings).read(1)


def _csv(tmp_path, line: dict, **settings):
    (tmp_path / "img0.png").write_bytes(png(0))
    return ImageTextManifest(str(write_csv(tmp_path / "bad.csv", [line])), **settings).read(0)


def _hf(tmp_path, row: dict, **settings):
    import datasets

    datasets.Dataset.from_dict({name: [value] for name, value in row.items()}).save_to_disk(str(tmp_path / "bad"))
    return hf_dataset(str(tmp_path / "bad"), image_column=None, key_column="id", **settings).read(0)


def _web(tmp_path, files: dict, **settings):
    url = write_tar(tmp_path / "bad.tar", {"k7": {"png": png(0), **files}})
    source = WebDatasetSource(url, shuffle=0, **settings)
    return source.decode(next(source.samples(0, 1, 0))[0])


BAD = {
    "manifest: missing text_pair": (_manifest, {"image": "img0.png", "text": "t"}, {"text_pair_field": "hypothesis"},
                                    r"bad\.jsonl:2: field 'hypothesis' \(text_pair_field\) is missing"),
    "manifest: missing image": (_manifest, {"text": "t"}, {}, r"bad\.jsonl:2: field 'image' \(image_field\) is missing"),
    "manifest: unknown class name": (_manifest, {"image": "img0.png", "text": "t", "label": "neutrall"}, {"class_names": NLI},
                                     r"bad\.jsonl:2: field 'label' \(label_field\) holds 'neutrall', which is not a class name "
                                     r"\(class_names: 'entailment', 'neutral', 'contradiction'\)"),
    "manifest: a list as a label": (_manifest, {"image": "img0.png", "text": "t", "label": [1, 2]}, {},
                                    r"bad\.jsonl:2: field 'label' \(label_field\) holds no label: \[1, 2\]"),
    "manifest: a fraction among class names": (_manifest, {"image": "img0.png", "text": "t", "label": 1.5}, {"class_names": NLI},
                                               r"bad\.jsonl:2: field 'label' \(label_field\) holds 1\.5, a fraction, but class_names"),
    "manifest: a name without class_names": (_manifest, {"image": "img0.png", "text": "t", "label": "cat"}, {},
                                             r"bad\.jsonl:2: field 'label' \(label_field\) holds 'cat', not an integer label"),
    "manifest: answers not a list": (_manifest, {"image": "img0.png", "text": "q?", "answers": "yes"}, {"answers_field": "answers"},
                                     r"bad\.jsonl:2: field 'answers' \(answers_field\) holds no list of answers, nor a JSON text of "
                                     r"one: 'yes'"),
    "csv: answers not JSON": (_csv, {"image": "img0.png", "text": "q?", "answers": "yes, no"}, {"answers_field": "answers"},
                              r"bad\.csv:2: field 'answers' \(answers_field\) holds no list of answers, nor a JSON text of one: 'yes, no'"),
    "csv: an answer that is no text": (_csv, {"image": "img0.png", "text": "q?", "answers": '[{"answer_id": 1}]'},
                                       {"answers_field": "answers"},
                                       r"bad\.csv:2: field 'answers' \(answers_field\) holds \{'answer_id': 1\} among its answers"),
    "csv: label out of range": (_csv, {"image": "img0.png", "text": "t", "label": "3"}, {"class_names": NLI},
                                r"bad\.csv:2: field 'label' \(label_field\) holds 3, but there are 3 class names"),
    "hf: missing text_pair value": (_hf, {"id": "r1", "text": "t", "pair": None}, {"text_pair_column": "pair"},
                                    r"bad row r1: column 'pair' \(text_pair_column\) is missing"),
    "hf: unknown class name": (_hf, {"id": "r1", "text": "t", "gold": "neutrall"}, {"label_column": "gold", "class_names": NLI},
                               r"bad row r1: column 'gold' \(label_column\) holds 'neutrall', which is not a class name "
                               r"\(class_names: 'ent"),
    "hf: answers not a list": (_hf, {"id": "r1", "text": "q?", "answers": 7}, {"answers_column": "answers"},
                               r"bad row r1: column 'answers' \(answers_column\) holds no list of answers: 7"),
    "hf: text that is no text": (_hf, {"id": "r1", "text": 5}, {}, r"bad row r1: column 'text' \(text_column\) holds no text: 5"),
    "webdataset: missing text_pair": (_web, {"txt": b"t"}, {"text_pair_ext": "hypothesis.txt"},
                                      r"bad\.tar key k7: file 'KEY\.hypothesis\.txt' \(text_pair_ext\) is missing"),
    "webdataset: missing caption": (_web, {}, {}, r"bad\.tar key k7: file 'KEY\.txt' \(text_ext\) is missing"),
    "webdataset: unknown class name": (_web, {"txt": b"t", "cls": b"neutrall"}, {"class_names": NLI},
                                       r"bad\.tar key k7: file 'KEY\.cls' \(label_ext\) holds 'neutrall', which is not a class name"),
    "webdataset: answers not a list": (_web, {"txt": b"q?", "answers.json": b'{"answer": "yes"}'}, {"answers_ext": "answers.json"},
                                       r"bad\.tar key k7: file 'KEY\.answers\.json' \(answers_ext\) holds no list of answers"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_data_error_naming_place_and_field(case, tmp_path):
    read, row, settings, message = BAD[case]
    with pytest.raises(DataError, match=message):
        read(tmp_path, row, **settings)


def test_bad_class_names_are_named_at_build_time(tmp_path, images):
    path = write_jsonl(tmp_path / "m.jsonl", [{"image": images[0], "text": "t"}])
    with pytest.raises(DataError, match=r"class_names lists 'cat' more than once"):
        ImageTextManifest(str(path), class_names=["cat", "dog", "cat"])
    with pytest.raises(DataError, match=r"class_names '.*nowhere\.txt' is not a file"):
        ImageTextManifest(str(path), class_names=str(tmp_path / "nowhere.txt"))


# --- from a recipe file, through the CLI ----------------------------------------------------------


@pytest.fixture
def recipe_data(tmp_path, images) -> Path:
    """The same sentence-pair VQA rows as a JSONL manifest (one broken line: its hypothesis missing),
    a saved HF dataset and two webdataset shards."""
    import datasets

    rows = [{"image": images[i % 4], "question": f"question {i}?", "hypothesis": f"hypothesis {i}", "answers": VQA_ANSWERS,
             "gold": NLI[i % 3]} for i in range(8)]  # fmt: skip
    write_jsonl(tmp_path / "rows.jsonl", rows)
    write_jsonl(tmp_path / "broken.jsonl", rows[:2] + [{k: v for k, v in rows[2].items() if k != "hypothesis"}])
    table = {name: [row[name] for row in rows] for name in ("question", "hypothesis", "answers", "gold")}
    datasets.Dataset.from_dict({**table, "image": [picture(i) for i in range(8)]}).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "shards").mkdir()
    files = {"question.txt": b"question?", "hypothesis.txt": b"hypothesis", "answers.json": json.dumps(VQA_ANSWERS).encode()}
    for shard in range(2):
        samples = {f"k{shard}_{i}": {"jpg": png(i), **files, "cls": NLI[i % 3].encode()} for i in range(4)}
        write_tar(tmp_path / "shards" / f"{shard:05d}.tar", samples)
    return tmp_path


NODES = {
    "manifest": "{type: manifest, path: DATA/rows.jsonl, text_field: question, text_pair_field: hypothesis, answers_field: answers, "
                "label_field: gold, class_names: [entailment, neutral, contradiction]}",
    "hf_dataset": "{type: hf_dataset, path: DATA/saved, text_column: question, text_pair_column: hypothesis, answers_column: answers, "
                  "label_column: gold, class_names: [entailment, neutral, contradiction]}",
    "webdataset": "{type: webdataset, urls: 'DATA/shards/{00000..00001}.tar', text_ext: question.txt, text_pair_ext: hypothesis.txt, "
                  "answers_ext: answers.json, class_names: [entailment, neutral, contradiction]}",
}  # fmt: skip


@pytest.mark.parametrize("source", list(NODES))
def test_the_new_fields_are_reachable_from_a_recipe_file(source, recipe_data, tmp_path, capsys):
    from flava_kit.recipe import build_section, load_recipe

    node = NODES[source].replace("DATA", str(recipe_data))
    recipe = write(tmp_path, f"data:\n  sources: {{shapes: null, mine: {node}}}\n  batch_size: 4\n")
    code, out = cli(capsys, "validate", recipe)
    assert code == 0, out
    code, out = cli(capsys, "data", recipe, "data.strict=true", "--batches", "2", "--out", str(tmp_path / "batch.png"))
    assert code == 0 and "0 broken items skipped" in out, out
    built = build_section(load_recipe(recipe), "data").sources["mine"]
    item = every_item(built)[0]
    assert item["text"].startswith("question") and item["text_pair"].startswith("hypothesis") and item["answers"] == VQA_ANSWERS
    assert item["label"] in (0, 1, 2) and built.class_names == NLI
    misspelled = node.replace("text_pair_", "text_pear_")
    code, out = cli(capsys, "validate", write(tmp_path, f"data:\n  sources: {{shapes: null, mine: {misspelled}}}\n"))
    assert code != 0 and "text_pear_" in out, out


def test_a_broken_line_stops_a_strict_cli_run_naming_file_line_and_field(recipe_data, tmp_path, capsys):
    node = NODES["manifest"].replace("DATA", str(recipe_data)).replace("rows.jsonl", "broken.jsonl")
    recipe = write(tmp_path, f"data:\n  sources: {{shapes: null, mine: {node}}}\n  batch_size: 2\n")
    code, out = cli(capsys, "data", recipe, "data.strict=true", "--batches", "3", "--out", str(tmp_path / "batch.png"))
    assert code != 0 and "broken.jsonl:3: field 'hypothesis' (text_pair_field) is missing" in out, out
