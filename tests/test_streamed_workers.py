"""Streamed parquet read by DataLoader workers, the way a user runs it: a recipe file mixing a
streamed ``hf_dataset`` (several parquet files, some of one row group) with a ``text_lines``
source, and ``flava-kit pretrain`` with ``data.workers=2``. Each worker's lane must read all of
its files (HF ``datasets`` must not split a file among the workers again), lanes read disjoint
files, a run resumed at an odd step reads the same keys, and the same recipe without workers
draws the same source at every step and reads each sample at most once per epoch."""

from __future__ import annotations

from pathlib import Path

import pytest

from flava_kit.train.data_state import read_keys
from tests.shards import synthetic_items
from tests.test_recipes_through_cli import cli, write

FILES, ROWS, STEPS = 4, 40, 8


def pairs(items: list[dict]):
    """An HF dataset of image-text pairs (images as HF ``Image`` features, as to_parquet stores them)."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": [i["image"] for i in items], "text": [i["text"] for i in items]}, features=features)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """4 parquet files of 40 image-text pairs (the first two one row group each, the others four)
    and a text file of 30 captions."""
    root = tmp_path_factory.mktemp("streamed")
    table = pairs(synthetic_items(FILES * ROWS))
    for part in range(FILES):
        rows = table.select(range(part * ROWS, (part + 1) * ROWS))
        rows.to_parquet(str(root / f"part-{part}.parquet"), batch_size=ROWS if part < 2 else ROWS // 4)  # a row group per batch
    (root / "captions.txt").write_text("\n".join(f"caption number {i}" for i in range(30)))
    return root


def recipe(data_dir: Path, tmp_path: Path) -> str:
    parquet = f"{{type: hf_dataset, path: '{data_dir}/part-*.parquet', streaming: true, shuffle: 8, weight: 3}}"
    captions = f"{{type: text_lines, path: '{data_dir}/captions.txt'}}"
    return write(tmp_path, f"data:\n  sources: {{shapes: null, parquet: {parquet}, captions: {captions}}}\n  batch_size: 16\n"
                           f"train: {{steps: {STEPS}, checkpoint_every: 3, record_keys: true, eval: null}}\n")  # fmt: skip


def pretrain(capsys, recipe_path: str, run: Path, *extra: str) -> dict[int, list[str]]:
    code, out = cli(capsys, "pretrain", recipe_path, *extra, "--out", str(run))
    assert code == 0, out
    return read_keys(run)


def parquet_files(keys: list[str]) -> set[str]:
    return {key.split(":")[0] for key in keys if ".parquet:" in key}


def test_two_workers_read_every_row_of_their_own_parquet_files_and_resume_exactly(data_dir, tmp_path, capsys):
    path = recipe(data_dir, tmp_path)
    steps = pretrain(capsys, path, tmp_path / "workers", "data.workers=2")
    assert sorted(steps) == list(range(1, STEPS + 1)) and all(len(keys) == 16 for keys in steps.values())
    lanes = [[key for step in sorted(steps) if (step - 1) % 2 == lane for key in steps[step]] for lane in (0, 1)]
    files = [parquet_files(keys) for keys in lanes]
    assert files[0] and files[1] and not files[0] & files[1]  # both lanes read parquet, never each other's files
    for keys in lanes:  # file after file: every file a lane went past, it read whole, each row once
        rows = [key for key in keys if ".parquet:" in key]
        order = list(dict.fromkeys(key.split(":")[0] for key in rows))
        assert len(rows) == len(set(rows)) and all(sum(k.startswith(f + ":") for k in rows) == ROWS for f in order[:-1])

    # Stopped after step 5 and resumed: lane 0 continues in worker 1 (the worker HF datasets starved).
    pretrain(capsys, path, tmp_path / "cut", "data.workers=2", "train.steps=5")
    assert (tmp_path / "cut" / "checkpoints" / "latest").read_text().strip().endswith("05")
    assert pretrain(capsys, path, tmp_path / "cut", "data.workers=2", "--resume") == steps

    plain = pretrain(capsys, path, tmp_path / "plain")  # no workers: one lane reads all 4 files
    assert [bool(parquet_files(plain[s])) for s in plain] == [bool(parquet_files(steps[s])) for s in steps]  # the same source per step
    read = [key for keys in plain.values() for key in keys if ".parquet:" in key]
    assert len(read) == len(set(read)) and len(parquet_files(read)) > 2  # one lane reads on through the files, each row once


def test_streamed_files_without_rows_are_an_error_naming_the_source_and_file(tmp_path, capsys):
    for part in range(2):
        pairs([]).to_parquet(str(tmp_path / f"empty-{part}.parquet"))
    node = f"{{type: hf_dataset, path: '{tmp_path}/empty-*.parquet', streaming: true}}"
    path = write(tmp_path, f"data:\n  sources: {{shapes: null, parquet: {node}}}\n  batch_size: 4\ntrain: {{steps: 2, eval: null}}\n")
    code, out = cli(capsys, "pretrain", path, "data.workers=2", "--out", str(tmp_path / "run"))
    assert code != 0 and f"hf_dataset {tmp_path}/empty-*.parquet (streaming): reader" in out and "empty-" in out, out
    assert "shards in a row" in out and "are they empty?" in out, out
