"""Shared fixtures: a registry restored after each test that registers runtime components; the
feature cache in a temporary folder (never the user's ~/.cache) and the HF Hub offline, for this
process and its children."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from flava_kit.registry import registry

os.environ["FLAVA_KIT_CACHE"] = tempfile.mkdtemp(prefix="flava_kit_features_")
os.environ["HF_HUB_OFFLINE"] = "1"  # a hub id in a test reads the cache only: no test reaches the network


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped (and reported as skipped) where PyTorch sees no CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def scratch_registry():
    """The global registry; runtime registrations made during the test are removed afterwards."""
    registry.list()  # load built-ins and plug-ins before taking the snapshot
    saved = {kind: dict(entries) for kind, entries in registry._entries.items()}
    yield registry
    registry._entries = saved


@pytest.fixture
def write_recipe(tmp_path):
    """Write YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A real one-step pretraining run directory (tests that damage it work on a copy)."""
    from pathlib import Path

    from flava_kit.train.run import pretrain

    path = tmp_path_factory.mktemp("run")
    recipe = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")
    pretrain(recipe, ["train.steps=1", "train.eval=null"], run_dir=path)
    return path
