"""HF Hub ids wherever a model, tokenizer or dataset is asked for, through ``huggingface_hub``'s cache.

``org/name`` or ``org/name@revision`` (a branch, tag or commit) resolves to the snapshot folder in
the cache you already have (``$HF_HUB_CACHE``, else ``~/.cache/huggingface/hub``): a model repo's
``models--org--name/snapshots/REV``, a dataset repo's ``datasets--org--name/snapshots/REV``. With
``HF_HUB_OFFLINE=1`` only the cache is read; otherwise a missing snapshot is downloaded by
huggingface_hub. A local path that exists always wins.

:func:`resolve` is the one place an id becomes a path. It is called once, where a reference enters
(a recipe value, a CLI argument, a public function such as ``from_pretrained("org/name")``);
everything below takes the local path it returns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from flava_kit.errors import FlavaKitError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")
"""``org/name`` with an optional ``@revision``."""

FILE_SUFFIXES = (".yaml", ".yml", ".parquet", ".arrow", ".tar", ".json", ".jsonl", ".txt", ".safetensors")
"""What a reference ending so names: a (missing) file, not a repo."""

REPO_TYPES = ("model", "dataset")


class NotCached(FlavaKitError):
    """A hub id that is neither in the cache nor downloadable (``HF_HUB_OFFLINE=1``, no network, no
    such repo). ``reference``, ``repo_type``, ``cache`` and ``command`` (the shell command that
    downloads it) say which and how to get it."""

    def __init__(self, message: str, reference: str, repo_type: str, cache: Path, command: str):
        super().__init__(message)
        self.reference, self.repo_type, self.cache, self.command = reference, repo_type, cache, command


def is_hub_id(reference: str) -> bool:
    """Whether ``reference`` reads as a hub id (and is not a path that exists, nor a file name)."""
    reference = str(reference)
    return bool(HUB_ID.fullmatch(reference)) and not Path(reference).exists() and not reference.lower().endswith(FILE_SUFFIXES)


def hub_cache() -> Path:
    """Where huggingface_hub keeps snapshots: ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, else its default."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ["HF_HOME"]) / "hub" if os.environ.get("HF_HOME") else Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (1, true, yes, on), looked at now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_command(reference: str, repo_type: str = "model") -> str:
    """The shell command that puts ``reference`` (``org/name[@revision]``) into the hub cache, with
    the CLI the installed huggingface_hub ships: ``hf`` since 0.34, ``huggingface-cli`` before."""
    import huggingface_hub

    repo, _, revision = reference.partition("@")
    major, minor = (int(part) for part in re.findall(r"\d+", huggingface_hub.__version__)[:2])
    words = ["hf download" if (major, minor) >= (0, 34) else "huggingface-cli download"]
    words += [f"--repo-type {repo_type}"] if repo_type != "model" else []
    words += [repo] + ([f"--revision {revision}"] if revision else [])
    return " ".join(words)


def resolve(reference: str | Path, what: str, repo_type: str = "model") -> Path:
    """A local path for ``reference``: the path itself when it exists, else the snapshot folder of
    the hub id (a ``repo_type`` repo: ``model`` or ``dataset``; see the module docstring). ``what``
    names the setting in errors (``data.tokenizer``, ``hf_dataset path``).

    Raises :class:`NotCached` (naming the id, the cache and the download command) when the id is
    neither cached nor downloadable; nothing else is tried."""
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
    reference = str(reference)
    path = Path(reference)
    if path.exists():
        return path
    if not is_hub_id(reference):
        raise FlavaKitError(f"{what} '{reference}': no such directory, and not an HF Hub id (org/name or org/name@revision)")
    from huggingface_hub import snapshot_download

    repo, _, revision = reference.partition("@")
    cache, command = hub_cache(), download_command(reference, repo_type)
    try:
        return Path(snapshot_download(repo, repo_type=repo_type, revision=revision or None, cache_dir=cache, local_files_only=offline()))
    except Exception as exc:  # huggingface_hub raises several kinds: not cached, offline, no network, no such repo
        why = "HF_HUB_OFFLINE=1 allows no download" if offline() else f"and could not be downloaded ({type(exc).__name__}: {exc})"
        kind = "" if repo_type == "model" else f" (a {repo_type} repo)"
        message = f"{what} '{reference}'{kind}: not in the HF Hub cache {cache}; {why}; download it with `{command}`"
        raise NotCached(" ".join(message.split()), reference, repo_type, cache, command) from exc
