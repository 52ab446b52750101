"""``flava-kit data``: look at what a recipe feeds the model, and how fast.

One batch drawn as a person would check it (each image with its caption, masked patches shaded,
masked tokens in brackets, ITM negatives flagged), and the loader's throughput and skip count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from flava_kit.data.batches import loader_batches


def loader_throughput(data: Any, tokenizer: Any, batches: int) -> dict[str, Any]:
    """Read ``batches`` batches through a DataLoader with the recipe's workers, as training does;
    return the first batch, samples/s (after the first batch, which pays the workers' start) and skipped items."""
    loader = torch.utils.data.DataLoader(data.batches(tokenizer).window(0, batches), batch_size=None, num_workers=data.workers)
    started, first, samples, skipped, last = time.perf_counter(), None, 0, 0, {}
    for batch in loader_batches(loader):
        if first is None:
            first, started = batch, time.perf_counter()
        else:
            samples += len(batch["keys"])
        last[batch["data_position"]["lane"]] = batch["data_position"]["skipped"]
    elapsed = time.perf_counter() - started
    return {"batch": first, "samples_per_s": samples / elapsed if samples else float("nan"), "skipped_items": sum(last.values()),
            "batches": batches}  # fmt: skip


def _caption(tokenizer: Any, batch: dict, row: int) -> str:
    """The caption as the model sees it: masked tokens as ``[word]`` (the word MLM must predict)."""
    labels = batch["mlm_labels"][row].tolist() if "mlm_labels" in batch else None
    words = []
    for position, token in enumerate(batch["input_ids"][row].tolist()):
        if token in tokenizer.all_special_ids:
            continue
        piece = tokenizer.convert_ids_to_tokens(token)
        words.append(f"[{piece}]" if labels is not None and labels[position] != -100 else piece)
    return " ".join(words).replace(" ##", "")


def draw_batch(batch: dict, tokenizer: Any, path: str | Path, mean: list[float], std: list[float], grid: tuple[int, int],
               count: int = 16) -> None:  # fmt: skip
    """A PNG of the first ``count`` items of ``batch``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = batch["input_ids"].shape[0] if "pixel_values" not in batch else batch["pixel_values"].shape[0]
    count = min(count, rows)
    columns = min(4, count)
    figure, axes = plt.subplots((count + columns - 1) // columns, columns, figsize=(3.2 * columns, 3.6 * ((count + columns - 1) // columns)),
                                squeeze=False)  # fmt: skip
    for axis in axes.flat:
        axis.axis("off")
    for row, axis in zip(range(count), axes.flat):
        title, color = batch["keys"][row], "black"
        if "pixel_values" in batch:
            image = (batch["pixel_values"][row] * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)).clamp(0, 1)
            if "bool_masked_pos" in batch:  # shade the patches masked image modelling must predict
                masked = batch["bool_masked_pos"][row].view(1, 1, *grid).float()
                shade = torch.nn.functional.interpolate(masked, size=image.shape[-2:], mode="nearest")[0]
                image = image * (1 - 0.6 * shade)
            axis.imshow(image.permute(1, 2, 0).numpy())
        if "input_ids" in batch:
            title += "\n" + _caption(tokenizer, batch, row)
        if "itm_labels" in batch and int(batch["itm_labels"][row]) == 0:
            title, color = "ITM negative (another pair's caption)\n" + title, "red"
        if "labels" in batch:
            title += f"\nlabel {int(batch['labels'][row])}"
        axis.set_title(title, fontsize=7, color=color, wrap=True)
    figure.suptitle("shaded: masked patches; [word]: masked tokens; red: ITM negatives", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
