"""The learning-rate schedule every run uses."""

from __future__ import annotations

import math


def warmup_cosine(warmup: int, total: int):
    """Linear warm-up to the base rate over ``warmup`` steps, then cosine decay to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
