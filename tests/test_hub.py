"""HF Hub ids read through huggingface_hub's cache: a real cache layout built locally, read offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import flava_kit
from flava_kit.cli import main
from flava_kit.errors import FlavaKitError

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> tuple[Path, torch.nn.Module]:
    """``testorg/tiny-flava`` in a hub cache (``models--ORG--NAME/snapshots/REV`` with ``refs/main``
    and a ``v1`` tag), as huggingface_hub lays it out; HF_HUB_OFFLINE=1 and HF_HUB_CACHE point at it."""
    from flava_kit.data.tokenizer import run_tokenizer

    torch.manual_seed(0)
    model = flava_kit.build("flava_tiny")
    exported = tmp_path / "export"
    flava_kit.save_pretrained(model, exported)
    run_tokenizer(None).save_pretrained(str(exported))
    cache = tmp_path / "hub"
    repo = cache / "models--testorg--tiny-flava"
    shutil.copytree(exported, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    (repo / "refs" / "v1").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, model


@pytest.mark.parametrize("reference", ["testorg/tiny-flava", "testorg/tiny-flava@main", "testorg/tiny-flava@v1", f"testorg/tiny-flava@{REVISION}"])
def test_from_pretrained_reads_a_hub_id_from_the_cache(hub, reference):
    _, model = hub
    loaded = flava_kit.from_pretrained(reference)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_hub_id_as_tokenizer_and_as_a_model_to_evaluate(hub, tmp_path, capsys):
    from PIL import Image

    from flava_kit.data.tokenizer import load_tokenizer

    assert load_tokenizer("testorg/tiny-flava")("a red circle")["input_ids"][0] == 2  # [CLS]
    for name, rgb in {"red": (220, 30, 30), "blue": (30, 40, 220)}.items():
        (tmp_path / "colours" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), rgb).save(tmp_path / "colours" / name / "0.png")
    assert main(["eval", "testorg/tiny-flava", "--data", str(tmp_path / "colours"), "--out", str(tmp_path / "out")]) == 0
    assert "| tiny-flava" in capsys.readouterr().out


def test_a_hub_id_neither_cached_nor_reachable_names_the_id_and_the_cache(hub, tmp_path, capsys):
    cache, _ = hub
    with pytest.raises(FlavaKitError, match=rf"'testorg/missing': not in the HF Hub cache {cache}; HF_HUB_OFFLINE=1 allows no download"):
        flava_kit.from_pretrained("testorg/missing")
    assert main(["convert", "testorg/missing@v2", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "testorg/missing@v2" in err and str(cache) in err and "Traceback" not in err
    assert "download it with `hf download testorg/missing --revision v2`" in err  # a model repo: no --repo-type
