"""Masking generators: invariants (hypothesis) and the same distribution as HF's generator."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.flava.image_processing_flava import FlavaMaskingGenerator

from flava_kit.masking import BlockMasking, MlmMasking, RandomMasking


@st.composite
def block_settings(draw):
    grid = draw(st.integers(2, 16))
    target = draw(st.integers(1, grid * grid))
    return dict(grid=grid, num_masking_patches=target, min_block_patches=draw(st.integers(1, max(1, target))),
                min_aspect=draw(st.floats(0.1, 1.0)), exact=draw(st.booleans()))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(params=block_settings(), batch=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_block_masks_stay_in_the_grid_and_count(params, batch, seed):
    masking = BlockMasking(**params)
    masks = masking(batch, torch.Generator().manual_seed(seed))
    assert masks.shape == (batch, params["grid"] ** 2) and masks.dtype == torch.bool
    counts = masks.sum(1)
    if params["exact"]:
        assert (counts == params["num_masking_patches"]).all()
    else:
        # At most the target; possibly none on tiny grids, where every attempt can miss (as in HF).
        assert (counts <= params["num_masking_patches"]).all()
    again = masking(batch, torch.Generator().manual_seed(seed))
    assert torch.equal(masks, again)  # same seed, same masks


@settings(max_examples=40, deadline=None)
@given(grid=st.integers(2, 16), ratio=st.floats(0.0, 1.0), batch=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_random_masks_have_exactly_the_ratio(grid, ratio, batch, seed):
    masks = RandomMasking(grid, ratio)(batch, torch.Generator().manual_seed(seed))
    assert (masks.sum(1) == round(ratio * grid * grid)).all()


def test_block_masking_has_hfs_distribution():
    random.seed(0)
    hf = FlavaMaskingGenerator()
    theirs = torch.stack([hf().flatten().bool() for _ in range(3000)]).float()
    ours = BlockMasking(grid=14)(20000, torch.Generator().manual_seed(0)).float()
    # Masked count per image: mean and spread agree (counts sit just under 75 in both).
    assert abs(ours.sum(1).mean() - theirs.sum(1).mean()) < 0.1
    assert abs(ours.sum(1).std() - theirs.sum(1).std()) < 0.15
    # Where patches get masked: per-position frequencies agree within sampling noise (~5 sigma).
    assert (ours.mean(0) - theirs.mean(0)).abs().max() < 5 * (0.25 / 3000) ** 0.5
    # Masks are blocks: a masked patch has masked neighbours as often as HF's do.
    def neighbour_rate(masks):
        grid = masks.view(-1, 14, 14)
        return ((grid[:, :, 1:] * grid[:, :, :-1]).sum() / grid[:, :, 1:].sum()).item()
    assert abs(neighbour_rate(ours) - neighbour_rate(theirs)) < 0.01


def test_block_mask_rows_are_independent():
    masks = BlockMasking(grid=14)(8000, torch.Generator().manual_seed(1)).float()
    frequency = masks.mean(0)
    expected = (frequency**2 + (1 - frequency) ** 2).sum()  # agreement of two independent rows
    observed = (masks[::2] == masks[1::2]).float().sum(1).mean()
    assert abs(observed - expected) < 1.0
    assert len({tuple(row.tolist()) for row in masks[:500].bool()}) > 490  # repeats are rare, not impossible


@st.composite
def token_batches(draw):
    batch, length = draw(st.integers(1, 6)), draw(st.integers(2, 30))
    lengths = draw(st.lists(st.integers(2, length), min_size=batch, max_size=batch))
    ids = torch.randint(5, 100, (batch, length), generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))))
    pad = torch.arange(length)[None] >= torch.tensor(lengths)[:, None]
    ids = ids.masked_fill(pad, 0)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True  # [CLS]
    special[torch.arange(batch), torch.tensor(lengths) - 1] = True  # [SEP]
    return ids, special, pad


@settings(max_examples=60, deadline=None)
@given(batch=token_batches(), seed=st.integers(0, 2**31), probability=st.floats(0.0, 1.0))
def test_mlm_masking_invariants(batch, seed, probability):
    ids, special, pad = batch
    masked, labels = MlmMasking(vocab_size=100, mask_token_id=4, probability=probability)(ids, special, torch.Generator().manual_seed(seed))
    selected = labels != -100
    assert not (selected & (special | pad)).any()  # special and padding tokens are never touched
    assert torch.equal(masked[~selected], ids[~selected])  # unselected tokens unchanged
    assert torch.equal(labels[selected], ids[selected])  # labels are the originals exactly where selected


def test_mlm_split_is_80_10_10_within_statistical_bounds():
    ids = torch.randint(5, 30000, (400, 128), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    masked, labels = MlmMasking(vocab_size=30522)(ids, special, torch.Generator().manual_seed(1))
    selected = labels != -100
    n = selected.sum().item()
    rate = n / ids.numel()
    assert abs(rate - 0.15) < 5 * (0.15 * 0.85 / ids.numel()) ** 0.5
    as_mask = (masked[selected] == 103).float().mean().item()
    kept = (masked[selected] == ids[selected]).float().mean().item()
    randomised = 1 - as_mask - kept
    for observed, expected in ((as_mask, 0.8), (kept, 0.1), (randomised, 0.1)):
        assert abs(observed - expected) < 5 * (expected * (1 - expected) / n) ** 0.5 + 1e-4  # kept: random may hit the same id


def test_whole_word_masking_selects_whole_words():
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 100, (50, 20), generator=generator)
    starts = torch.rand(50, 20, generator=generator) < 0.4
    starts[:, 0] = True
    _, labels = MlmMasking(vocab_size=100, whole_word=True, probability=0.3)(ids, torch.zeros_like(starts), generator, word_starts=starts)
    selected = labels != -100
    word = starts.long().cumsum(1)
    for row in range(50):
        for w in word[row].unique():
            tokens = selected[row][word[row] == w]
            assert tokens.all() or not tokens.any()
    assert selected.any()


def test_whole_word_needs_word_starts():
    with pytest.raises(ValueError, match="whole_word masking needs word_starts"):
        MlmMasking(whole_word=True)(torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))
