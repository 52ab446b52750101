"""Tokenizers: a local HF tokenizer directory, or a WordPiece vocabulary built from a word list."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def load_tokenizer(path: str | Path):
    """A ``BertTokenizerFast`` from a local directory (never downloaded)."""
    from transformers import BertTokenizerFast

    if not Path(path).is_dir():
        raise ValueError(f"tokenizer '{path}' is not a local tokenizer directory (flava_kit never downloads one)")
    return BertTokenizerFast.from_pretrained(str(path), local_files_only=True)


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
