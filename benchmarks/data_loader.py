"""Data loading from webdataset shards: flava_kit's ``webdataset`` source against open_clip's pipeline.

Builds shards in img2dataset's layout (JPEG photos-like images at ``--image-size`` px with
captions, and a ``sizes.json``), then reads them both ways in this one process, alternating,
with the same decode (PIL), the same resize (flava_kit's processor, 224 px bicubic) and the same
tokenisation (the run's BERT tokenizer, 77 tokens): open_clip's training pipeline as its ``get_wds_dataset``
builds it (from the ``open_clip_train`` package that open-clip-torch installs; one stage swapped,
see :func:`open_clip_loader`), and flava_kit's pretraining batches
(which also draw block masks, MLM masks and ITM negatives). Samples/s over ``--batches`` batches
after the first (which pays for starting workers), with 0 and 2 DataLoader workers.

``--pretrain`` also pretrains the demo model from shards of the synthetic shapes for ``--steps``
steps and reports the trainer's data-wait share of step time (``system.csv``).

    python benchmarks/data_loader.py [--samples 2048] [--batch-size 64] [--batches 20] [--repeats 3] [--pretrain]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from flava_kit.data.batches import PretrainingBatches
from flava_kit.data.processor import ImageProcessor
from flava_kit.data.shards import write_shards
from flava_kit.data.sources import SyntheticSource, WebDatasetSource
from flava_kit.data.synthetic import vocabulary
from flava_kit.data.tokenizer import tokenizer_from_words
from flava_kit.masking import BlockMasking, MlmMasking

TEXT_LENGTH = 77


def make_shards(folder: Path, samples: int, image_size: int, per_shard: int) -> str:
    source = SyntheticSource(samples, image_size=image_size)
    write_shards((source[i] for i in range(samples)), folder, per_shard=per_shard)
    return f"{folder}/{{00000..{(samples + per_shard - 1) // per_shard - 1:05d}}}.tar"


def flava_kit_loader(urls: str, tokenizer, batch_size: int, batches: int, workers: int):
    batches_ = PretrainingBatches(
        {"web": WebDatasetSource(urls)}, batch_size=batch_size, processor=ImageProcessor(224, None), tokenizer=tokenizer,
        text_length=TEXT_LENGTH, image_masking=BlockMasking(grid=14, num_masking_patches=75), text_masking=MlmMasking(vocab_size=len(tokenizer)),
    )  # fmt: skip
    return torch.utils.data.DataLoader(batches_.window(0, batches), batch_size=None, num_workers=workers)


def open_clip_loader(urls: str, tokenizer, batch_size: int, batches: int, workers: int):
    """open_clip's training pipeline (``open_clip_train.data.get_wds_dataset``, non-resampled), stage
    for stage, with its own shard shuffle, filters, handlers and buffer sizes. One stage differs:
    its ``tarfile_to_samples_nothrow`` fails on webdataset 1.x (``KeyError: 'fname'``: it expects
    the 0.2 file-sample keys), so webdataset's own ``tarfile_to_samples`` reads the tars instead."""
    import webdataset as wds
    from open_clip_train import data as oc

    processor = ImageProcessor(224, None)

    def tokenize(text: str) -> torch.Tensor:  # open_clip calls tokenizer(text)[0] per sample
        return tokenizer([text], padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")["input_ids"]

    pipeline = wds.DataPipeline(
        wds.SimpleShardList(urls),
        oc.detshuffle2(bufsize=oc._SHARD_SHUFFLE_SIZE, initial=oc._SHARD_SHUFFLE_INITIAL, seed=0, epoch=oc.SharedEpoch(0)),
        wds.split_by_node,
        wds.split_by_worker,
        wds.tarfile_to_samples(handler=oc.log_and_continue),
        wds.shuffle(bufsize=oc._SAMPLE_SHUFFLE_SIZE, initial=oc._SAMPLE_SHUFFLE_INITIAL),
        wds.select(oc.filter_no_caption_or_no_image),
        wds.decode("pilrgb", handler=oc.log_and_continue),
        wds.rename(image="jpg;png;jpeg;webp", text="txt"),
        wds.map_dict(image=processor.pixels, text=lambda text: tokenize(text)[0]),
        wds.to_tuple("image", "text"),
        wds.batched(batch_size, partial=False),
    )
    return wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers, persistent_workers=workers > 0)


def samples_per_s(loader, batches: int) -> float:
    """Samples/s over the batches after the first."""
    iterator, count = iter(loader), 0
    first = next(iterator)
    size = len(first["keys"]) if isinstance(first, dict) else len(first[0])
    started = time.perf_counter()
    for _ in range(batches - 1):
        next(iterator)
        count += size
    return count / (time.perf_counter() - started)


def compare(urls: str, args) -> None:
    tokenizer = tokenizer_from_words(vocabulary(), None)
    print(f"{'workers':>7}  {'flava_kit samples/s':>20}  {'open_clip samples/s':>20}  {'ratio':>6}")
    for workers in (0, 2):
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternate, so drift in the machine's speed hits both
            theirs.append(samples_per_s(open_clip_loader(urls, tokenizer, args.batch_size, args.batches, workers), args.batches))
            ours.append(samples_per_s(flava_kit_loader(urls, tokenizer, args.batch_size, args.batches, workers), args.batches))
        ratios = [a / b for a, b in zip(ours, theirs)]
        print(f"{workers:>7}  {statistics.median(ours):>20.1f}  {statistics.median(theirs):>20.1f}  {statistics.median(ratios):>6.2f}"
              f"   (ratios {min(ratios):.2f}-{max(ratios):.2f} over {args.repeats} runs)")  # fmt: skip


def data_wait(folder: Path, args) -> None:
    """Pretrain the demo model from shards of its own synthetic data; the trainer's data-wait share."""
    urls = make_shards(folder / "demo", 20000, 64, 1000)
    exe = str(Path(sys.executable).parent / "flava-kit")
    print(f"\nthe demo model pretrained from {urls} for {args.steps} steps of 64")
    print(f"{'workers':>7}  {'samples/s':>10}  {'data wait / step time':>22}")
    for workers in (0, 2):
        run = folder / f"run-{workers}"
        overrides = ["~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{urls}'}}", f"data.workers={workers}",
                     f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}", "train.log_every=10"]  # fmt: skip
        subprocess.run([exe, "pretrain", "demo", *overrides, "--out", str(run)], check=True, capture_output=True)
        with open(run / "system.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["step"]) > 10]  # after warm-up
        wait, compute = sum(float(r["data_wait_s"]) for r in rows), sum(float(r["compute_s"]) for r in rows)
        speed = statistics.median(float(r["samples_per_s"]) for r in rows)
        print(f"{workers:>7}  {speed:>10.1f}  {wait / (wait + compute):>21.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--per-shard", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pretrain", action="store_true", help="also measure data wait in a demo pretraining run from shards")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the loaders' work is per sample; a worker process is one thread too
    with tempfile.TemporaryDirectory() as tmp:
        urls = make_shards(Path(tmp) / "shards", args.samples, args.image_size, args.per_shard)
        print(f"{args.samples} samples at {args.image_size} px in {urls}; batches of {args.batch_size}, {args.batches} per measurement")
        compare(urls, args)
        if args.pretrain:
            data_wait(Path(tmp), args)


if __name__ == "__main__":
    main()
