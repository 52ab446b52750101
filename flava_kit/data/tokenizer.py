"""Tokenizers: a local HF tokenizer directory, or a WordPiece vocabulary built from a word list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def load_tokenizer(path: str | Path):
    """A ``BertTokenizerFast`` from a local directory or an HF Hub id (resolved here, once, through
    the hub cache: see :mod:`flava_kit.hub`)."""
    from flava_kit.hub import resolve

    directory = resolve(path, "tokenizer")
    if not directory.is_dir():
        raise ValueError(f"tokenizer '{path}' is not a tokenizer directory")
    return tokenizer_from_directory(directory)


def tokenizer_from_directory(directory: str | Path):
    """A ``BertTokenizerFast`` from a local tokenizer directory (what callers holding a path use)."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def tokenizer_from_words(words: list[str], directory: str | Path | None):
    """A ``BertTokenizerFast`` whose vocabulary is the special tokens then ``words`` (saved in ``directory``, if given).

    [PAD] is id 0 and [MASK] id 4; unknown words become [UNK].
    """
    from transformers import BertTokenizerFast

    tokens = SPECIAL_TOKENS + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=True)
    if directory is not None:
        tokenizer.save_pretrained(str(directory))  # so a run's tokenizer travels with its checkpoints
    return tokenizer


def word_starts(encoded: Any) -> torch.Tensor:
    """``[B, L]`` booleans, True at the first token of each word, from a fast tokenizer's word ids.

    What whole-word masking needs: ``"[CLS] play ##ing [SEP]"`` gives ``[F, T, F, F]`` (special and
    padding tokens belong to no word).
    """
    rows = []
    for row in range(len(encoded["input_ids"])):
        ids = encoded.word_ids(row)
        rows.append([w is not None and (j == 0 or ids[j - 1] != w) for j, w in enumerate(ids)])
    return torch.tensor(rows, dtype=torch.bool)


def run_tokenizer(path: str | None, directory: str | Path | None = None) -> Any:
    """The tokenizer at ``path`` (a local directory or HF Hub id), or, without one, one built from the
    synthetic dataset's vocabulary; either is saved in ``directory`` if given, so a run holds its own
    copy and keeps working when ``path`` moves."""
    from flava_kit.data.synthetic import vocabulary

    if not path:
        return tokenizer_from_words(vocabulary(), directory)
    tokenizer = load_tokenizer(path)
    if directory is not None:
        tokenizer.save_pretrained(str(directory))
    return tokenizer


class Truncations:
    """Texts cut to fit the text length, over one pass or run: :meth:`note` counts a batch's where the
    batch is made (maybe in a DataLoader worker), :meth:`take` adds up what batches carry where they
    are read, and :meth:`warning` says it once. ``count`` texts were cut; ``example`` is the first,
    as the model sees it, with its full length."""

    def __init__(self) -> None:
        self.count, self.items, self.example = 0, 0, None

    def note(self, tokenizer: Any, encoded: Any, texts: list[str], pairs: list[str] | None = None) -> dict:
        """What a batch carries about its cut texts: ``truncated`` (how many) and ``truncated_example``
        (this reader's first cut text, else None). ``encoded`` is the batch encoded with ``truncation``;
        a fast tokenizer's encodings keep what was cut (``overflowing``), so counting costs no second
        tokenization (only the example's full length is measured, once)."""
        full = torch.as_tensor(encoded["attention_mask"])[:, -1].nonzero().flatten().tolist()  # only a full row can have been cut
        rows = [row for row in full if encoded.encodings and encoded.encodings[row].overflowing]
        example = None
        if rows and self.example is None:
            row = rows[0]
            length = len(tokenizer(texts[row], pairs[row] if pairs else None)["input_ids"])
            example = self.example = f"'{tokenizer.decode(encoded['input_ids'][row])}' ({length} tokens)"
        self.count += len(rows)
        return {"truncated": len(rows), "truncated_example": example}

    def take(self, notes: dict, items: int) -> None:
        """Add up what one batch of ``items`` carries (see :meth:`note`), removing it from ``notes``."""
        self.count += int(notes.pop("truncated", 0))
        example = notes.pop("truncated_example", None)
        self.example, self.items = self.example or example, self.items + items

    def warning(self, where: str, limit: str, fix: str) -> str | None:
        """The one message about the cut texts (None when none was cut): ``limit`` names the text
        length (``data.text_length (16 tokens)``), ``fix`` what to change."""
        if not self.count:
            return None
        return (f"{where}: the text of {self.count} of {self.items} items is longer than {limit} and was cut to fit, "
                f"e.g. {self.example}: what a text says past the cut is lost to the model; {fix}")  # fmt: skip
