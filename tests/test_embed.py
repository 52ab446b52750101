"""``flava-kit embed``: a run's image and text embeddings, with their keys, from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from flava_kit.cli import main



@pytest.fixture
def pictures(tmp_path) -> Path:
    folder = tmp_path / "pictures"
    (folder / "sub").mkdir(parents=True)
    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(folder / ("sub" if i == 2 else "") / f"{colour}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_embed_a_folder_of_images(run_dir, pictures, tmp_path, capsys):
    assert main(["embed", str(run_dir), "--images", str(pictures), "--out", str(tmp_path / "emb")]) == 0
    assert "skipped 1 unreadable" in capsys.readouterr().out
    tensors = load_file(tmp_path / "emb" / "embeddings.safetensors")
    keys = (tmp_path / "emb" / "keys.txt").read_text().splitlines()
    assert keys == ["green.png", "red.png", "sub/blue.png"] and set(tensors) == {"image"}
    assert tensors["image"].shape == (3, 16) and torch.allclose(tensors["image"].norm(dim=-1), torch.ones(3), atol=1e-5)


def test_embed_a_manifest_writes_both_and_npy(run_dir, pictures, tmp_path):
    manifest = pictures / "pairs.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": f"{c}.png", "text": f"a {c} square"}) for c in ("red", "green")) + "\n")
    assert main(["embed", str(run_dir), "--manifest", str(manifest), "--out", str(tmp_path / "emb"), "--format", "npy"]) == 0
    images, texts = np.load(tmp_path / "emb" / "image_embeddings.npy"), np.load(tmp_path / "emb" / "text_embeddings.npy")
    assert images.shape == texts.shape == (2, 16)
    assert (tmp_path / "emb" / "keys.txt").read_text().splitlines() == ["pairs.jsonl:1", "pairs.jsonl:2"]


def test_embed_texts(run_dir, tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_text("a red circle\n\na blue square\n")
    assert main(["embed", str(run_dir), "--texts", str(lines), "--out", str(tmp_path / "emb")]) == 0
    assert load_file(tmp_path / "emb" / "embeddings.safetensors")["text"].shape == (2, 16)
