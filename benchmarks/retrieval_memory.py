"""Peak memory of image<->text retrieval recall@k: flava_kit's chunked computation vs the dense N x N one.

Each way runs in a fresh process on the same random, normalised features (N images, N texts, D
dimensions); the figure is the process's peak resident memory minus its resident memory with the
features loaded, so it is what the similarity computation itself needs.

    python benchmarks/retrieval_memory.py [--n 20000] [--dim 512] [--chunk 4096]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def features(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    texts = torch.nn.functional.normalize(images + 0.5 * torch.randn(n, dim, generator=generator), dim=-1)
    return images, texts


def dense(images: torch.Tensor, texts: torch.Tensor) -> dict[str, float]:
    similarity = images @ texts.T
    truth = torch.arange(len(images))
    results = {}
    for direction, scores in (("image_to_text", similarity), ("text_to_image", similarity.T)):
        rank = (scores > scores[truth, truth][:, None]).sum(1)
        results[f"{direction}_R@1"] = (rank < 1).float().mean().item()
    return results


def measure(way: str, n: int, dim: int, chunk: int) -> None:
    from flava_kit.evaluation import retrieval_recall_at

    images, texts = features(n, dim)
    base = rss_mib()
    start = time.perf_counter()
    result = dense(images, texts) if way == "dense" else retrieval_recall_at(images, texts, ks=(1,), chunk=chunk)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak - base:.0f} {seconds:.2f} {result['image_to_text_R@1']:.4f} {result['text_to_image_R@1']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--way", choices=["dense", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        measure(args.way, args.n, args.dim, args.chunk)
        return
    print(f"retrieval R@1 over {args.n:,} images x {args.n:,} texts, {args.dim} dims, fp32, CPU (a fresh process each)")
    print(f"{'':<22}{'peak MiB':>10}{'seconds':>10}{'i->t R@1':>10}{'t->i R@1':>10}")
    rows = {}
    for way in ("dense", "chunked"):
        command = [sys.executable, __file__, "--way", way, "--n", str(args.n), "--dim", str(args.dim), "--chunk", str(args.chunk)]
        rows[way] = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
        label = way if way == "dense" else f"chunked ({args.chunk} rows)"
        print(f"{label:<22}" + "".join(f"{value:>10}" for value in rows[way]))
    print(f"{'ratio chunked / dense':<22}{float(rows['chunked'][0]) / float(rows['dense'][0]):>10.3f}")


if __name__ == "__main__":
    main()
