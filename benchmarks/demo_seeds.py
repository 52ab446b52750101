"""The main job on every seed: `flava-kit pretrain RECIPE data.seed=S` for each recipe and seed, each
run a fresh process as a user starts it; prints each run's held-out results and wall time, then
min / median / max per recipe.

    python benchmarks/demo_seeds.py                      # demo and demo_siglip_pixel, seeds 0..4
    python benchmarks/demo_seeds.py --recipes demo --seeds 0 1 --out runs/seeds

Run it on a quiet machine: the wall times are part of what it reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = {
    "zero_shot_accuracy": "held-out zero-shot",
    "shifted_zero_shot_accuracy": "shifted zero-shot",
    "linear_probe_accuracy": "linear probe",
    "wall_s": "wall s",
}


def run(recipe: str, seed: int, out: Path) -> dict:
    """One pretraining run in a fresh process; its results.json plus the wall time."""
    run_dir = out / f"{recipe}-seed{seed}"
    beside = Path(sys.executable).parent / "flava-kit"  # this environment's console script, PATH or not
    command = [str(beside) if beside.is_file() else "flava-kit", "pretrain", recipe, f"data.seed={seed}", "--out", str(run_dir)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    (run_dir / "stdout.txt").write_text(done.stdout)  # the summary the run printed, as a user sees it
    return {**json.loads((run_dir / "results.json").read_text()), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["demo", "demo_siglip_pixel"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path("runs/demo_seeds"))
    args = parser.parse_args()
    header = f"{'recipe':<20}{'seed':>5}" + "".join(f"{title:>20}" for title in COLUMNS.values())
    summary = []
    print(header)
    for recipe in args.recipes:
        rows = []
        for seed in args.seeds:
            rows.append(run(recipe, seed, args.out))
            print(f"{recipe:<20}{seed:>5}" + "".join(f"{rows[-1][key]:>20.3f}" for key in COLUMNS), flush=True)
        for name, pick in (("min", min), ("median", statistics.median), ("max", max)):
            summary.append(f"{recipe:<20}{name:>7}" + "".join(f"{pick(row[key] for row in rows):>18.3f}  " for key in COLUMNS))
    print("\n" + f"{'recipe':<20}{'':>7}" + "".join(f"{title:>18}  " for title in COLUMNS.values()))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
