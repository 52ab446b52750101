"""Features on disk, keyed by content, written in chunks while a pass streams, memory-mapped when read.

An entry holds one model's features of one dataset in one modality. Its key hashes what the
features depend on: the model's weights digest and input settings (image size, normalisation,
text length, tokenizer vocabulary), the source's resolved recipe node and the size and modification
time of every local file or folder it names, the modality, and :data:`FEATURES_VERSION`. A pass
writes ``chunk-*.npz`` files into ``KEY.partial/`` as it goes; a pass that stops there resumes
from them; a finished pass is reordered into the source's order (``ROWS.npy`` per representation,
``labels.npy``, ``keys.txt``, ``meta.json``) and renamed to ``KEY/`` in one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.tasks.base import Features
from flava_kit.hub import is_hub_id, resolve

FEATURES_VERSION = 3
"""Bumped whenever the way features are computed or stored changes: old entries are then never read.
2: text pairs are encoded as BERT pairs; items' VQA answers are stored with their rows.
3: an item's several captions are a text row each (a list of captions was an unreadable item before)."""


def default_cache_dir() -> Path:
    """``$FLAVA_KIT_CACHE``, else ``$XDG_CACHE_HOME/flava_kit/features`` (``~/.cache/flava_kit/features``)."""
    if os.environ.get("FLAVA_KIT_CACHE"):
        return Path(os.environ["FLAVA_KIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flava_kit" / "features"


def _hash_files(node: Any, hasher: Any) -> None:
    """Feed (path, size, mtime) of every existing local path a recipe node names (folders walked), and
    the snapshot revision of every HF Hub dataset id, to ``hasher``, one at a time: data changed in
    place under the same name, or a dataset id whose ``refs/main`` moved, gets a new key."""
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else [node]
    for value in values:
        if isinstance(value, (dict, list)):
            _hash_files(value, hasher)
        elif isinstance(value, str) and is_hub_id(value):  # its snapshot's revision: a new download is new data
            try:
                hasher.update(f"{value}|{resolve(value, 'features cache', repo_type='dataset').name}\n".encode())
            except FlavaKitError:
                pass  # not cached: building the source says so
        elif isinstance(value, str) and "://" not in value and not value.startswith("pipe:"):
            path = Path(value)
            paths = path.rglob("*") if path.is_dir() else path.parent.glob(path.name) if any(c in value for c in "*?[") else [path]
            for found in sorted(paths):
                if found.is_file():
                    stat = found.stat()
                    hasher.update(f"{found}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())


def cache_key(digest: str, settings: dict, source_node: dict, modality: str) -> str:
    """The entry name for these features (see the module docstring)."""
    what = {"weights": digest, "settings": settings, "source": source_node, "modality": modality, "version": FEATURES_VERSION}
    hasher = hashlib.blake2b(json.dumps(what, sort_keys=True, default=str).encode(), digest_size=16)
    _hash_files(source_node, hasher)
    return f"{modality}-{hasher.hexdigest()}"


def load_entry(root: Path, key: str) -> Features | None:
    """A finished entry, memory-mapped; None when there is none."""
    folder = root / key
    if not (folder / "meta.json").is_file():
        return None
    meta = json.loads((folder / "meta.json").read_text())
    representations = {name: np.load(folder / f"{name}.npy", mmap_mode="c") for name in meta["representations"]}
    keys = (folder / "keys.txt").read_text().split("\n")[: meta["rows"]]
    answers = json.loads((folder / "answers.json").read_text()) if (folder / "answers.json").is_file() else None
    return Features(representations, np.load(folder / "labels.npy"), keys, skipped=meta["skipped"], answers=answers)


class EntryWriter:
    """Writes one entry chunk by chunk (:meth:`add`, :meth:`flush`), then :meth:`finish` orders it."""

    def __init__(self, root: Path, key: str, chunk_rows: int = 2048):
        self.root, self.key, self.chunk_rows = Path(root), key, chunk_rows
        self.partial = self.root / f"{key}.partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self.pending: list[dict] = []
        self.chunks = sorted(self.partial.glob("chunk-*.npz"))
        self.already = self.done()  # rows an interrupted pass wrote; a shared pass may offer them again

    def done(self) -> set[tuple[int, int]]:
        """Orders already written by an earlier, interrupted pass (rows and broken items)."""
        done: set[tuple[int, int]] = set()
        for chunk in self.chunks:
            with np.load(chunk) as data:
                done.update(map(tuple, data["orders"].tolist()))
                done.update(map(tuple, data["skipped"].tolist()))
        return done

    def add(self, orders: np.ndarray, keys: list[str], labels: np.ndarray, representations: dict[str, np.ndarray], skipped: np.ndarray,
            answers: list[list[str] | None] | None = None) -> None:  # fmt: skip
        """One batch's rows (and broken items), written out once ``chunk_rows`` have gathered;
        ``answers``: each row's VQA answers (None where an item has none), when some item has them."""
        if self.already:
            keep = np.array([tuple(o) not in self.already for o in orders.tolist()], dtype=bool)
            orders, labels, keys = orders[keep], labels[keep], [k for k, kept in zip(keys, keep) if kept]
            representations = {name: value[keep] for name, value in representations.items()}
            skipped = np.array([o for o in skipped.tolist() if tuple(o) not in self.already], dtype=np.int64).reshape(-1, 2)
            answers = None if answers is None else [a for a, kept in zip(answers, keep) if kept]
        extra = {} if answers is None else {"answers": np.asarray([json.dumps(a) for a in answers], dtype=str)}  # ragged: one JSON per row
        self.pending.append({"orders": orders, "keys": np.asarray(keys, dtype=str), "labels": labels, "skipped": skipped, **extra,
                             **{f"rep_{name}": value for name, value in representations.items()}})  # fmt: skip
        if sum(len(p["orders"]) for p in self.pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Write the rows gathered so far as one chunk (atomically: a crash leaves whole chunks only)."""
        if not self.pending:
            return
        rows = [p for p in self.pending if len(p["orders"])]
        parts = {"orders": np.concatenate([p["orders"] for p in rows]).reshape(-1, 2) if rows else np.zeros((0, 2), dtype=np.int64),
                 "keys": np.concatenate([p["keys"] for p in rows]) if rows else np.zeros(0, dtype=str),
                 "labels": np.concatenate([p["labels"] for p in rows]) if rows else np.zeros(0, dtype=np.int64),
                 "skipped": np.concatenate([p["skipped"].reshape(-1, 2) for p in self.pending])}  # fmt: skip
        if any("answers" in p for p in rows):  # rows of a batch without answers hold JSON null
            parts["answers"] = np.concatenate([p.get("answers", np.full(len(p["orders"]), "null")) for p in rows])
        for name in [n for n in (rows[0] if rows else {}) if n.startswith("rep_")]:
            parts[name] = np.concatenate([p[name] for p in rows])
        target = self.partial / f"chunk-{len(self.chunks):06d}.npz"
        temporary = target.with_suffix(".tmp.npz")
        np.savez(temporary, **parts)
        temporary.replace(target)
        self.chunks.append(target)
        self.pending = []

    def finish(self) -> Features:
        """Reorder every chunk's rows into the source's order, write the entry, return it memory-mapped."""
        self.flush()
        orders, keys, labels, answers, skipped, names = [], [], [], [], 0, None
        for chunk in self.chunks:
            with np.load(chunk) as data:
                orders.append(data["orders"].reshape(-1, 2))
                keys += data["keys"].tolist()
                answers += data["answers"].tolist() if "answers" in data.files else ["null"] * len(data["keys"])
                labels.append(data["labels"])
                skipped += len(data["skipped"])
                names = names or [n[4:] for n in data.files if n.startswith("rep_")]
        order = np.concatenate(orders) if orders else np.zeros((0, 2), dtype=np.int64)
        rank = np.empty(len(order), dtype=np.int64)
        rank[np.lexsort((order[:, 1], order[:, 0]))] = np.arange(len(order))  # row i of the chunks goes to rank[i]
        for name in names or []:
            self._write_representation(name, rank)
        np.save(self.partial / "labels.npy", (np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64))[np.argsort(rank)])
        ordered_keys = [""] * len(keys)
        for row, target in enumerate(rank.tolist()):
            ordered_keys[target] = keys[row]
        (self.partial / "keys.txt").write_text("\n".join(ordered_keys))
        if any(a != "null" for a in answers):
            ordered_answers = [answers[row] for row in np.argsort(rank).tolist()]
            (self.partial / "answers.json").write_text("[" + ",\n".join(ordered_answers) + "]")
        meta = {"rows": len(order), "skipped": skipped, "representations": names or [], "version": FEATURES_VERSION,
                "keys_hash": hashlib.blake2b("\n".join(ordered_keys).encode(), digest_size=16).hexdigest()}  # fmt: skip
        (self.partial / "meta.json").write_text(json.dumps(meta, indent=2))
        for chunk in self.chunks:
            chunk.unlink()
        final = self.root / self.key
        if final.exists():
            shutil.rmtree(final)
        self.partial.rename(final)
        entry = load_entry(self.root, self.key)
        assert entry is not None
        return entry

    def _write_representation(self, name: str, rank: np.ndarray) -> None:
        """Scatter each chunk's rows into one memory-mapped ``[N, D]`` file, a chunk in memory at a time."""
        width = 0
        for chunk in self.chunks:
            with np.load(chunk) as data:
                width = width or (data[f"rep_{name}"].shape[1] if f"rep_{name}" in data.files else 0)
        array = np.lib.format.open_memmap(self.partial / f"{name}.npy", mode="w+", dtype=np.float32, shape=(len(rank), width))
        offset = 0
        for chunk in self.chunks:
            with np.load(chunk) as data:
                if f"rep_{name}" not in data.files:
                    continue
                rows = data[f"rep_{name}"]
                array[rank[offset : offset + len(rows)]] = rows
                offset += len(rows)
        array.flush()
        del array
