"""Peak memory of an evaluation pass as the dataset grows: zero-shot classification of N images, N = 5,000 and 50,000.

A tiny model (``tests/fixtures/tiny_pretrain.yaml`` with its initial weights: what is measured is the
pass, not the predictions) is evaluated by an eval recipe with one ``zero_shot_classification`` task
over a ``labelled_folder`` of N small PNGs (the synthetic held-out shapes at the model's image size,
12 colour x shape classes), drawn once into a temporary folder (smaller sizes are hard links to the
first N of the largest). Each size runs in a fresh process, with a fresh, empty feature cache
(``FLAVA_KIT_CACHE``), so its peak resident memory (``ru_maxrss`` of that process, read at its end)
is that pass's own. The child also reports its resident memory right after the model is loaded,
so the growth due to the data shows; with DataLoader workers their peak (``RUSAGE_CHILDREN``: the
largest worker) is shown beside it. The bound checked: peak RSS of the largest size over that of the
smallest stays within 1.2 (features are streamed to disk, scores computed in chunks).

``--device cuda`` runs the model on the GPU; the CUDA allocator's memory after loading and its
peak over the pass are then shown too. ``--precision`` autocasts the pass to bf16 / fp16. MFU:
images/s times the image forward's FLOPs per image (counted by ``torch.utils.flop_counter`` on
one batch; the class prompts' few texts left out) over the device's peak.

    python benchmarks/eval_memory.py [--sizes 5000 50000] [--workers 0] [--batch-size 256] [--device cpu] [--precision fp32] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny_pretrain.yaml"
BOUND = 1.2
"""The largest size's peak RSS over the smallest's must stay within this."""
TINY_SIZES = {"sizes": [64, 128], "batch_size": 32}


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far (``ru_maxrss`` is in KiB on Linux), in MiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def write_images(root: Path, count: int, image_size: int) -> list[Path]:
    """Draw ``count`` held-out synthetic shapes as PNGs into ``root/<class name>/``; their paths, in order."""
    from flava_kit.data.sources import SyntheticSource
    from flava_kit.data.synthetic import SyntheticShapes, class_names

    names = class_names()
    for name in names:  # every class folder, even one that gets no image, so the labels never shift
        (root / name).mkdir(parents=True, exist_ok=True)
    shapes = SyntheticShapes(count, image_size, seed=SyntheticSource.HELD_OUT_SEED, two_shapes=0.0)
    paths = []
    for index in range(count):
        item = shapes[index]
        path = root / names[item["label"]] / f"{index:07d}.png"
        item["image"].save(path, compress_level=1)  # fast to write; decoding cost barely changes
        paths.append(path)
    return paths


def link_subset(paths: list[Path], source_root: Path, root: Path) -> None:
    """A folder of the first ``len(paths)`` images as hard links (copies where links fail), same class folders."""
    for folder in source_root.iterdir():
        if folder.is_dir():
            (root / folder.name).mkdir(parents=True, exist_ok=True)
    for path in paths:
        target = root / path.relative_to(source_root)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)


def image_flop_per_image(loaded, batch_size: int) -> float:
    """FLOPs of the image forward per image, counted on one batch of random pixels."""
    import torch

    from flava_kit.evaluation.encode import image_representations

    pixels = torch.randn(batch_size, 3, loaded.image_size, loaded.image_size)
    return common.count_flops(lambda: image_representations(loaded, pixels)) / batch_size


def measure(size: int, root: str, workers: int, batch_size: int, device: str, precision: str = "fp32") -> None:
    """In a fresh process: load the model, then evaluate the folder; print a JSON line of the figures last."""
    import torch

    from flava_kit.checkpoints.loading import load_model
    from flava_kit.evaluation.recipe import load_eval_recipe
    from flava_kit.evaluation.runner import evaluate
    from flava_kit.train.device import autocast

    reference = {"recipe": str(FIXTURE)}
    recipe = load_eval_recipe({"recipe_version": 1,
                               "tasks": {"zero_shot": {"type": "zero_shot_classification", "data": {"type": "labelled_folder", "root": root}}},
                               "settings": {"batch_size": batch_size, "workers": workers, "device": device}},
                              models={"tiny": reference})  # fmt: skip
    loaded = load_model(reference, device)
    loaded.digest()  # hashing the weights belongs to loading the model, not to the pass over the data
    after_load = rss_mib()
    print(f"N={size:,}: RSS after loading the model {after_load:.0f} MiB (peak so far {peak_mib():.0f} MiB)", flush=True)
    where = torch.device(device)
    gpu_after_load = None
    if where.type == "cuda":
        gpu_after_load = common.memory_mib(where)
        common.reset_peak_memory(where)  # the pass's own peak, not loading's
    start = time.perf_counter()
    with autocast(where, precision):
        results = evaluate(recipe, loaded={"tiny": loaded})
    common.synchronize(where)
    seconds = time.perf_counter() - start
    outcome = results["results"]["tiny"]["zero_shot"]
    figures = {"size": size, "rss_after_load_mib": after_load, "peak_rss_mib": peak_mib(), "workers_peak_rss_mib": peak_mib(resource.RUSAGE_CHILDREN),
               "seconds": seconds, "images_per_s": size / seconds, "encoded": outcome["encoded"]["data:image"],
               "accuracy": outcome["metrics"]["accuracy"]}  # fmt: skip
    if where.type == "cuda":  # the allocator's figures, read before counting FLOPs adds a batch of its own
        figures |= {"gpu_after_load_mib": gpu_after_load, "gpu_peak_mib": common.peak_memory_mib(where)}
    with autocast(where, precision):
        figures["flop_per_image"] = image_flop_per_image(loaded, batch_size)
    print(json.dumps(figures), flush=True)


def run_child(size: int, root: Path, cache: Path, args: argparse.Namespace) -> dict:
    """One size in a fresh process with its own empty cache; the child's figures plus its whole wall time."""
    command = [sys.executable, __file__, "--child", str(size), "--root", str(root), "--workers", str(args.workers),
               "--batch-size", str(args.batch_size), "--device", args.device, "--precision", args.precision]  # fmt: skip
    environment = {**os.environ, "FLAVA_KIT_CACHE": str(cache), "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"N={size}: the child failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print("  " + line)
    figures = json.loads(lines[-1])
    if figures["encoded"] != size:  # an entry read from a cache would measure no pass at all
        sys.exit(f"N={size}: the pass encoded {figures['encoded']} images, expected all {size} (was the cache not empty?)")
    return {**figures, "process_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000], help="images per run (default: 5000 50000)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding images (default 0)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    common.add_arguments(parser)
    args = parser.parse_args()
    common.apply_tiny(parser, args, TINY_SIZES)
    if args.child is not None:
        measure(args.child, args.root, args.workers, args.batch_size, args.device, args.precision)
        return
    device = common.resolve(args)
    args.device = device.type  # what the children run on (auto resolved here, once)
    from flava_kit.recipe import load_recipe

    image_size = int(load_recipe(str(FIXTURE)).data["model"]["image_encoder"]["image_size"])
    sizes = sorted(set(args.sizes))
    rows = []
    with tempfile.TemporaryDirectory(prefix="flava_kit_eval_memory_") as tmp:
        largest = Path(tmp) / f"images-{sizes[-1]}"
        start = time.perf_counter()
        paths = write_images(largest, sizes[-1], image_size)
        print(f"wrote {sizes[-1]:,} {image_size}x{image_size} PNGs in {time.perf_counter() - start:.1f} s")
        for size in sizes:
            root = largest
            if size != sizes[-1]:
                root = Path(tmp) / f"images-{size}"
                link_subset(paths[:size], largest, root)
            cache = Path(tmp) / f"cache-{size}"  # fresh and empty for each run
            rows.append(run_child(size, root, cache, args))
            shutil.rmtree(cache, ignore_errors=True)
    on = args.device if args.precision == "fp32" else f"{args.device}, {args.precision} autocast"
    print(f"\nzero-shot classification, tiny model, {on}, batch {args.batch_size}, {args.workers} workers (a fresh process and cache each)")
    head = ("images", "after load MiB", "peak MiB", "growth MiB", "workers' peak", "pass s", "process s", "images/s")
    gpu = device.type == "cuda"
    print("".join(f"{h:>15}" for h in head + (("GPU after load", "GPU peak MiB") if gpu else ())))
    for row in rows:
        growth = row["peak_rss_mib"] - row["rss_after_load_mib"]
        values = (f"{row['size']:,}", f"{row['rss_after_load_mib']:.0f}", f"{row['peak_rss_mib']:.0f}", f"{growth:.0f}",
                  f"{row['workers_peak_rss_mib']:.0f}" if args.workers else "-", f"{row['seconds']:.1f}", f"{row['process_seconds']:.1f}",
                  f"{row['images_per_s']:.0f}")  # fmt: skip
        if gpu:
            values += (f"{row['gpu_after_load_mib']:.0f}", f"{row['gpu_peak_mib']:.0f}")
        print("".join(f"{v:>15}" for v in values))
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
        verdict = "within" if ratio <= BOUND else "OVER"
        print(f"peak RSS {rows[-1]['size']:,} / {rows[0]['size']:,} images: {ratio:.3f} ({verdict} the bound {BOUND})")
    peak = common.device_peak(device, args.precision, measure_size=512 if args.tiny else None)
    print(common.mfu_line({f"{row['size']:,} images": row["images_per_s"] * row["flop_per_image"] for row in rows}, peak))
    print(f"({common.gflop_text(rows[0]['flop_per_image'])} GFLOP per image: the image forward, counted by torch.utils.flop_counter)")


if __name__ == "__main__":
    main()
