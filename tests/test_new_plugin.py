"""``flava-kit new-plugin``: the skeleton installs with pip, its components appear in ``flava-kit ls``,
work in a recipe, and its own tests pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flava_kit.cli import main

EXE = Path(sys.executable).parent / "flava-kit"


@pytest.mark.slow
def test_a_new_plugin_installs_and_its_components_work(tmp_path, capsys):
    assert main(["new-plugin", "fk-skeleton-parts", "--out", str(tmp_path)]) == 0
    assert "pip install -e" in capsys.readouterr().out
    package = tmp_path / "fk-skeleton-parts"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", str(package)]
    installed = subprocess.run(pip, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    try:
        listing = subprocess.run([str(EXE), "ls"], capture_output=True, text=True, env={"COLUMNS": "250", "PATH": ""}).stdout
        for kind in ("encoder", "loss", "source", "logger", "task"):
            assert f"fk_skeleton_parts_{kind}" in listing, listing
        swapped = subprocess.run([str(EXE), "validate", "demo", "model.image_encoder={type: fk_skeleton_parts_encoder, image_size: 64, hidden_size: 128}",
                                  "model.objectives.extra={type: fk_skeleton_parts_loss}"],
                                 capture_output=True, text=True)  # fmt: skip
        assert swapped.returncode == 0, swapped.stderr
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                               capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert tests.returncode == 0 and "6 passed" in tests.stdout, tests.stdout[-3000:]
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "fk-skeleton-parts"], capture_output=True)


def test_new_plugin_refuses_bad_names_kinds_and_existing_folders(tmp_path, capsys):
    assert main(["new-plugin", "9lives", "--out", str(tmp_path)]) == 2
    assert main(["new-plugin", "ok-name", "--kinds", "encoder", "codebok", "--out", str(tmp_path)]) == 2
    assert "choose from encoder, loss, source, logger, task" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["new-plugin", "taken", "--out", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err and list((tmp_path / "taken").iterdir()) == []
