"""Batched block masking (flava_kit) vs HF's FlavaMaskingGenerator: masks per second, one run.

    python benchmarks/masking_vs_hf.py [--batch 4096] [--hf-masks 3000]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers.models.flava.image_processing_flava import FlavaMaskingGenerator

from flava_kit.masking import BlockMasking


def rate(make, count: int, repeats: int = 3) -> float:
    """Best masks/s over ``repeats`` timed runs of ``make()`` producing ``count`` masks."""
    make()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        make()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096, help="masks per flava_kit call")
    parser.add_argument("--hf-masks", type=int, default=3000, help="masks per timed HF run (one call each)")
    args = parser.parse_args()
    random.seed(0)
    hf, ours = FlavaMaskingGenerator(), BlockMasking(grid=14)
    generator = torch.Generator().manual_seed(0)
    # Best of several runs each (a run of ours takes ~20 ms, so it gets more of them to beat noise).
    theirs = rate(lambda: [hf() for _ in range(args.hf_masks)], args.hf_masks, repeats=3)
    mine = rate(lambda: ours(args.batch, generator), args.batch, repeats=20)
    print(f"block masking, 14x14 grid, 75 patches, {torch.get_num_threads()} threads")
    print(f"{'HF FlavaMaskingGenerator':<28}{theirs:>14,.0f} masks/s")
    print(f"{'flava_kit BlockMasking':<28}{mine:>14,.0f} masks/s  (batch {args.batch})")
    print(f"{'ratio':<28}{mine / theirs:>14.1f}x")


if __name__ == "__main__":
    main()
