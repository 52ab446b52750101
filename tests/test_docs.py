"""The documentation: the site builds with ``mkdocs build --strict`` (broken links and API pages
fail it), and every Python example in the docs and the README runs (mktestdocs), so none can rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          capture_output=True, text=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "contracts" / "index.html").is_file()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_runs(page, tmp_path, monkeypatch, scratch_registry):
    from mktestdocs import check_md_file

    monkeypatch.chdir(tmp_path)  # examples write (out/, runs/) into a scratch folder
    check_md_file(fpath=page, memory=True)  # the blocks of a page run in order, sharing names
