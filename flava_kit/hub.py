"""HF Hub ids wherever a model or tokenizer directory is asked for, through ``huggingface_hub``'s cache.

``org/name`` or ``org/name@revision`` (a branch, tag or commit) resolves to the snapshot folder in
the cache you already have (``$HF_HUB_CACHE``, else ``~/.cache/huggingface/hub``). With
``HF_HUB_OFFLINE=1`` only the cache is read; otherwise a missing snapshot is downloaded by
huggingface_hub. A local path that exists always wins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from flava_kit.errors import FlavaKitError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")
"""``org/name`` with an optional ``@revision``."""


def is_hub_id(reference: str) -> bool:
    """Whether ``reference`` reads as a hub id (and is not a path that exists)."""
    return bool(HUB_ID.fullmatch(reference)) and not Path(reference).exists() and not reference.endswith((".yaml", ".yml"))


def hub_cache() -> Path:
    """Where huggingface_hub keeps snapshots: ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, else its default."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ["HF_HOME"]) / "hub" if os.environ.get("HF_HOME") else Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (1, true, yes, on), looked at now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def local_dir(reference: str, what: str) -> Path:
    """A local directory for ``reference``: the path itself when it exists, else the hub id's snapshot
    (see the module docstring). ``what`` names the setting in errors (``data.tokenizer``)."""
    path = Path(reference)
    if path.exists():
        return path
    if not HUB_ID.fullmatch(reference):
        raise FlavaKitError(f"{what} '{reference}': no such directory, and not an HF Hub id (org/name or org/name@revision)")
    from huggingface_hub import snapshot_download

    repo, _, revision = reference.partition("@")
    cache = hub_cache()
    try:
        return Path(snapshot_download(repo, revision=revision or None, cache_dir=cache, local_files_only=offline()))
    except Exception as exc:  # huggingface_hub raises several kinds: not cached, offline, no network, no such repo
        why = "HF_HUB_OFFLINE=1 allows no download" if offline() else f"and could not be downloaded ({type(exc).__name__}: {exc})"
        raise FlavaKitError(f"{what} '{reference}': not in the HF Hub cache {cache}; {why}") from exc
