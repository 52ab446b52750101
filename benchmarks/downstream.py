"""FLAVA's downstream protocol on the shapes: each ``finetune_*`` recipe trained twice, from scratch
and from a pretraining run (``train.init_from``), each a fresh `flava-kit pretrain` process as a
user starts it; prints the held-out metric each recipe's eval reports (of the checkpoint its
``train.select`` kept), before and after pretraining.

    flava-kit pretrain demo --out runs/demo
    python benchmarks/downstream.py --pretrained runs/demo
    python benchmarks/downstream.py --pretrained runs/demo --recipes finetune_vqa --out runs/downstream
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

METRICS = {  # recipe -> the metric its eval recipe reports, as results.json names it
    "finetune_vqa": "vqa_vqa_accuracy",
    "finetune_text_pair": "text_pair_accuracy",
    "finetune_multimodal_classification": "match_roc_auc",
    "finetune_retrieval": "retrieval_reranked_text_to_image_R@1",
}
ALSO = {  # a second figure where the task reports one users quote
    "finetune_text_pair": "text_pair_macro_f1",
    "finetune_multimodal_classification": "match_accuracy",
    "finetune_retrieval": "retrieval_text_to_image_R@1",
}


def run(recipe: str, out: Path, init_from: Path | None) -> dict:
    """One fine-tuning run in a fresh process; its results.json plus the wall time."""
    beside = Path(sys.executable).parent / "flava-kit"  # this environment's console script, PATH or not
    command = [str(beside) if beside.is_file() else "flava-kit", "pretrain", recipe, "--out", str(out)]
    if init_from is not None:
        command.insert(3, f"train.init_from={init_from}")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    (out / "stdout.txt").write_text(done.stdout)
    return {**json.loads((out / "results.json").read_text()), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", type=Path, required=True, help="a pretraining run directory (flava-kit pretrain demo)")
    parser.add_argument("--recipes", nargs="+", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--out", type=Path, default=Path("runs/downstream"))
    args = parser.parse_args()
    print(f"| recipe | metric | from scratch | from {args.pretrained.name} | selected step (scratch / pretrained) | wall s |")
    print("|---|---|---|---|---|---|")
    for recipe in args.recipes:
        scratch = run(recipe, args.out / f"{recipe}-scratch", None)
        tuned = run(recipe, args.out / f"{recipe}-pretrained", args.pretrained)
        steps = f"{scratch['selected']['step']} / {tuned['selected']['step']}"
        walls = f"{scratch['wall_s']:.0f} / {tuned['wall_s']:.0f}"
        for metric in (METRICS[recipe], ALSO.get(recipe)):
            if metric:
                print(f"| {recipe} | {metric} | {scratch[metric]:.3f} | {tuned[metric]:.3f} | {steps} | {walls} |", flush=True)


if __name__ == "__main__":
    main()
