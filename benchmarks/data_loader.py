"""Data loading from webdataset shards: flava_kit's ``webdataset`` source against open_clip's pipeline.

Builds shards in img2dataset's layout (JPEG photos-like images at ``--image-size`` px with
captions, and a ``sizes.json``), then reads them both ways in this one process, alternating,
with the same decode (PIL), the same resize (flava_kit's processor, 224 px bicubic) and the same
tokenisation (the run's BERT tokenizer, 77 tokens): open_clip's training pipeline as its ``get_wds_dataset``
builds it (from the ``open_clip_train`` package that open-clip-torch installs; one stage swapped,
see :func:`open_clip_loader`), and flava_kit's pretraining batches
(which also draw block masks, MLM masks and ITM negatives). Samples/s over ``--batches`` batches
after the first (which pays for starting workers), with 0 and 2 DataLoader workers.

``--device cuda`` copies every batch to the GPU as training does (pinned memory with workers,
asynchronous copies), both ways, and counts a batch when it is there. ``--precision`` does not
apply to the comparison (the loaders make fp32 pixels and integer ids: there is nothing to
autocast), so it is refused there.

``--pretrain`` also pretrains the demo model from shards of the synthetic shapes for ``--steps``
steps (on ``--device``, in ``--precision``) and reports the trainer's data-wait share of step
time, its peak memory (``system.csv``: the CUDA allocator's on a GPU, the process's resident set
on the CPU) and its MFU: samples/s times the demo model's training FLOPs per sample (forward and
backward, counted by ``torch.utils.flop_counter`` on its example batch) over the device's peak.

    python benchmarks/data_loader.py [--samples 2048] [--batch-size 64] [--batches 20] [--repeats 3] [--workers 0 2]
                                     [--device cpu] [--pretrain [--precision fp32]] [--tiny]
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

import common
from flava_kit.data.batches import PretrainingBatches
from flava_kit.data.processor import ImageProcessor
from flava_kit.data.shards import write_shards
from flava_kit.data.sources import SyntheticSource, WebDatasetSource
from flava_kit.data.synthetic import vocabulary
from flava_kit.data.tokenizer import tokenizer_from_words
from flava_kit.masking import BlockMasking, MlmMasking
from flava_kit.train.device import to_device

TEXT_LENGTH = 77
TINY_SIZES = {"samples": 64, "image_size": 64, "per_shard": 32, "batch_size": 8, "batches": 4, "repeats": 1, "workers": [0],
              "steps": 6, "pretrain_samples": 320, "pretrain_batch": 8}  # fmt: skip


def make_shards(folder: Path, samples: int, image_size: int, per_shard: int) -> str:
    """Synthetic shapes written as webdataset shards of ``per_shard``; their brace-expanded URL pattern."""
    source = SyntheticSource(samples, image_size=image_size)
    write_shards((source[i] for i in range(samples)), folder, per_shard=per_shard)
    return f"{folder}/{{00000..{(samples + per_shard - 1) // per_shard - 1:05d}}}.tar"


def flava_kit_loader(urls: str, tokenizer, batch_size: int, batches: int, workers: int, pin_memory: bool = False):
    """flava_kit's pretraining batches from the shards, in a DataLoader as the trainer builds it."""
    batches_ = PretrainingBatches(
        {"web": WebDatasetSource(urls)}, batch_size=batch_size, processor=ImageProcessor(224, None), tokenizer=tokenizer,
        text_length=TEXT_LENGTH, image_masking=BlockMasking(grid=14, num_masking_patches=75), text_masking=MlmMasking(vocab_size=len(tokenizer)),
    )  # fmt: skip
    return torch.utils.data.DataLoader(batches_.window(0, batches), batch_size=None, num_workers=workers, pin_memory=pin_memory)


def open_clip_loader(urls: str, tokenizer, batch_size: int, batches: int, workers: int, pin_memory: bool = False):
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
    return wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers, persistent_workers=workers > 0,
                         pin_memory=pin_memory)  # fmt: skip


def on_device(batch, device: torch.device):
    """A batch (flava_kit's dict, open_clip's tuple) with its tensors copied to ``device`` (none on the CPU)."""
    if isinstance(batch, dict):
        return to_device(batch, device)
    return batch if device.type == "cpu" else tuple(part.to(device, non_blocking=True) for part in batch)


def samples_per_s(loader, batches: int, device: torch.device) -> float:
    """Samples/s over the batches after the first, each on ``device`` when counted."""
    iterator, count = iter(loader), 0
    first = on_device(next(iterator), device)
    size = len(first["keys"]) if isinstance(first, dict) else len(first[0])
    common.synchronize(device)
    started = time.perf_counter()
    for _ in range(batches - 1):
        on_device(next(iterator), device)
        count += size
    common.synchronize(device)  # the last copies have landed
    return count / (time.perf_counter() - started)


def compare(urls: str, args, device: torch.device) -> None:
    """Both loaders over the shards, alternating, at each worker count; medians and their ratio."""
    tokenizer = tokenizer_from_words(vocabulary(), None)
    print(f"{'workers':>7}  {'flava_kit samples/s':>20}  {'open_clip samples/s':>20}  {'ratio':>6}")
    for workers in args.workers:
        loader = dict(tokenizer=tokenizer, batch_size=args.batch_size, batches=args.batches, workers=workers,
                      pin_memory=device.type == "cuda" and workers > 0)  # pinned as the trainer's DataLoader is  # fmt: skip
        ours, theirs = [], []
        for _ in range(args.repeats):  # alternate, so drift in the machine's speed hits both
            theirs.append(samples_per_s(open_clip_loader(urls, **loader), args.batches, device))
            ours.append(samples_per_s(flava_kit_loader(urls, **loader), args.batches, device))
        ratios = [a / b for a, b in zip(ours, theirs)]
        print(f"{workers:>7}  {statistics.median(ours):>20.1f}  {statistics.median(theirs):>20.1f}  {statistics.median(ratios):>6.2f}"
              f"   (ratios {min(ratios):.2f}-{max(ratios):.2f} over {args.repeats} runs)")  # fmt: skip


def demo_flop_per_sample() -> float:
    """FLOPs of one demo training sample: forward and backward of the demo model on its example batch."""
    import flava_kit
    from flava_kit.checkpoints.loading import model_input_sizes

    model = flava_kit.build("demo").train()
    inputs = model.example_inputs(batch_size=8, text_length=model_input_sizes(model)[1])
    return common.count_flops(lambda: model(**inputs).loss.backward()) / 8


def data_wait(folder: Path, args, device: torch.device) -> None:
    """Pretrain the demo model from shards of its own synthetic data; the trainer's data-wait share, peak memory and MFU."""
    urls = make_shards(folder / "demo", args.pretrain_samples, 64, min(1000, max(1, args.pretrain_samples // 10)))
    exe = str(Path(sys.executable).parent / "flava-kit")
    print(f"\nthe demo model pretrained from {urls} for {args.steps} steps of {args.pretrain_batch}, "
          f"{common.describe(device, args.precision)}")  # fmt: skip
    print(f"{'workers':>7}  {'samples/s':>10}  {'data wait / step time':>22}  {'peak MiB':>9}")
    achieved = {}
    log_every = min(10, max(1, args.steps // 3))  # 10 for the default 100 steps; the first report is warm-up
    for workers in args.workers:
        run = folder / f"run-{workers}"
        overrides = ["~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{urls}'}}", f"data.workers={workers}",
                     f"data.batch_size={args.pretrain_batch}", f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}",
                     f"train.log_every={log_every}", "train.eval=null", f"train.device={device.type}",
                     f"train.precision={args.precision}"]  # fmt: skip
        subprocess.run([exe, "pretrain", "demo", *overrides, "--out", str(run)], check=True, capture_output=True)
        with open(run / "system.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["step"]) > log_every]  # after warm-up
        wait, compute = sum(float(r["data_wait_s"]) for r in rows), sum(float(r["compute_s"]) for r in rows)
        speed = statistics.median(float(r["samples_per_s"]) for r in rows)
        peak = max(float(r["peak_memory_mib"]) for r in rows)
        print(f"{workers:>7}  {speed:>10.1f}  {wait / (wait + compute):>21.1%}  {peak:>9.0f}")
        achieved[f"{workers} workers"] = speed
    flop = demo_flop_per_sample()
    peak = common.device_peak(device, args.precision, measure_size=512 if args.tiny else None)
    print(common.mfu_line({label: speed * flop for label, speed in achieved.items()}, peak))
    print(f"({common.gflop_text(flop)} GFLOP per sample of a training step, counted by torch.utils.flop_counter)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--per-shard", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to measure (default: 0 2)")
    parser.add_argument("--pretrain", action="store_true", help="also measure data wait in a demo pretraining run from shards")
    parser.add_argument("--steps", type=int, default=100, help="--pretrain's training steps")
    parser.add_argument("--pretrain-samples", type=int, default=20000, help="samples in --pretrain's shards (default 20000)")
    parser.add_argument("--pretrain-batch", type=int, default=64, help="--pretrain's batch size (the demo's, 64)")
    common.add_arguments(parser, precision_help="--pretrain's training precision (fp32, bf16, fp16); the loader comparison is fp32 only")
    args = parser.parse_args()
    common.apply_tiny(parser, args, TINY_SIZES)
    if args.precision != "fp32" and not args.pretrain:
        parser.error("--precision applies to --pretrain's training run only: the loaders make fp32 pixels and integer ids")
    device = common.resolve(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the loaders' work is per sample; a worker process is one thread too
    with tempfile.TemporaryDirectory() as tmp:
        urls = make_shards(Path(tmp) / "shards", args.samples, args.image_size, args.per_shard)
        on = "" if device.type == "cpu" else f", copied to {torch.cuda.get_device_name(device)}"
        print(f"{args.samples} samples at {args.image_size} px in {urls}; batches of {args.batch_size}, {args.batches} per measurement{on}")
        compare(urls, args, device)
        if args.pretrain:
            torch.set_num_threads(threads)  # FLOP counting and the CPU's measured peak: as the training run computes
            data_wait(Path(tmp), args, device)


if __name__ == "__main__":
    main()
