"""BERT's masked-language-model corruption of token ids."""

from __future__ import annotations

import torch

from flava_kit.constraints import Probability, TokenId, Vocabulary
from flava_kit.registry import register


@register("masking", "mlm")
class MlmMasking:
    """Select ``probability`` of the maskable tokens; replace 80% by ``mask_token_id``, 10% by a
    random token, keep 10%. Special tokens and ``pad_token_id`` are never selected.

    With ``whole_word``, whole words are selected (pass ``word_starts``, True at each word's first
    token): a word is selected with ``probability`` and all its tokens are then corrupted.
    Returns ``(masked_ids, labels)``; labels hold the original id where selected, -100 elsewhere.
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """The 80/10/10 split adds up to at most 1; the mask token is in the vocabulary (:data:`flava_kit.contracts.RecipeChecks`)."""
        if node["mask_fraction"] + node["random_fraction"] > 1:
            yield (path + ("random_fraction",), f"mask_fraction {node['mask_fraction']} + random_fraction {node['random_fraction']} exceeds 1",
                   "the rest of the selected tokens is kept; the two fractions must add up to 1 or less")  # fmt: skip
        if node["mask_token_id"] >= node["vocab_size"]:
            yield path + ("mask_token_id",), f"{node['mask_token_id']} is outside the vocabulary (vocab_size {node['vocab_size']})"

    def __init__(
        self,
        vocab_size: Vocabulary = 30522,
        mask_token_id: TokenId = 103,
        pad_token_id: TokenId | None = 0,
        probability: Probability = 0.15,
        mask_fraction: Probability = 0.8,
        random_fraction: Probability = 0.1,
        whole_word: bool = False,
        ignore_index: int = -100,
    ):
        if not (0 <= probability <= 1 and mask_fraction >= 0 and random_fraction >= 0 and mask_fraction + random_fraction <= 1):
            raise ValueError("need 0 <= probability <= 1 and mask_fraction + random_fraction <= 1, both non-negative")
        self.vocab_size, self.mask_token_id, self.pad_token_id = vocab_size, mask_token_id, pad_token_id
        self.probability, self.mask_fraction, self.random_fraction = probability, mask_fraction, random_fraction
        self.whole_word, self.ignore_index = whole_word, ignore_index

    def __call__(
        self,
        input_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        word_starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids``, ``special_tokens_mask`` (True/1 at special tokens), ``word_starts``: ``[B, L]``."""
        if special_tokens_mask.shape != input_ids.shape:
            raise ValueError(f"special_tokens_mask: expected shape {tuple(input_ids.shape)}, got {tuple(special_tokens_mask.shape)}")
        maskable = ~special_tokens_mask.bool()
        if self.pad_token_id is not None:
            maskable &= input_ids != self.pad_token_id
        draw = torch.rand(input_ids.shape, generator=generator)
        if self.whole_word:
            if word_starts is None:
                raise ValueError("whole_word masking needs word_starts ([B, L], True at each word's first token)")
            word = word_starts.bool().long().cumsum(1)  # tokens of one word share a number
            selected = draw.gather(1, _first_token_of(word)) < self.probability
        else:
            selected = draw < self.probability
        selected &= maskable
        action = torch.rand(input_ids.shape, generator=generator)
        random_ids = torch.randint(0, self.vocab_size, input_ids.shape, generator=generator, dtype=input_ids.dtype)
        masked = torch.where(selected & (action < self.mask_fraction), torch.full_like(input_ids, self.mask_token_id), input_ids)
        use_random = selected & (action >= self.mask_fraction) & (action < self.mask_fraction + self.random_fraction)
        masked = torch.where(use_random, random_ids, masked)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, self.ignore_index))
        return masked, labels


def _first_token_of(word: torch.Tensor) -> torch.Tensor:
    """For each token, the position of the first token of its word (``word`` numbers words per row)."""
    positions = torch.arange(word.shape[1]).expand_as(word)
    starts = torch.full_like(word, word.shape[1])  # scatter_reduce 'amin' over each word's positions
    starts = starts.scatter_reduce(1, word.clamp(max=word.shape[1] - 1), positions, reduce="amin")
    return starts.gather(1, word.clamp(max=word.shape[1] - 1))
