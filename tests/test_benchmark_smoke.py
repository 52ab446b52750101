"""The side-by-side benchmarks at their tiny sizes (and ``shapes_geometry`` on a one-step run), so
they cannot rot: each runs as a subprocess on the CPU, exits 0 and prints its table, ratio and MFU
lines; ``--device cuda`` where there is no GPU stops each with a message (run in this process: the
exit it raises is what Python prints); the shared helpers (GPU peak table, FLOP counting,
``--tiny``) are checked directly. A GPU case (marked ``gpu``) runs each in bf16 on CUDA.

The CPU runs start together (the selected ones, on first use) and each test waits for its own: most
of a tiny run is importing torch and transformers, which overlaps. Each runs one torch thread: on a
shared 2-core machine two threads per process stall on each other's barriers.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ("forward_vs_hf.py", "pretrain_step_vs_hf.py", "data_loader.py", "eval_memory.py", "eval_vs_clip_benchmark.py", "accumulation.py")
RUNS = {  # name -> command line after the script
    "forward": ("forward_vs_hf.py", "--tiny"),
    "pretrain_bf16": ("pretrain_step_vs_hf.py", "--tiny", "--precision", "bf16"),
    "loader": ("data_loader.py", "--tiny", "--pretrain"),
    "eval_memory": ("eval_memory.py", "--tiny"),
    "eval_vs_clip": ("eval_vs_clip_benchmark.py", "--tiny"),
    "accumulation": ("accumulation.py", "--tiny"),
}
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
TIMEOUT = 600


@functools.cache
def load_common():
    """``benchmarks/common.py`` as a module (the scripts import it from their own folder)."""
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_main(monkeypatch, script: str, *arguments: str) -> SystemExit:
    """Run ``script`` as ``__main__`` in this process with ``arguments``; the SystemExit it must end in."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [script, *arguments])
    monkeypatch.setenv("TQDM_DISABLE", os.environ.get("TQDM_DISABLE", "1"))  # a script's os.environ.setdefault, undone afterwards
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    return exit_.value


class Run:
    """A benchmark subprocess writing to files (a pipe nobody reads yet would stall it)."""

    def __init__(self, name: str, folder: Path):
        self.stdout, self.stderr = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            command = [sys.executable, str(BENCHMARKS / RUNS[name][0]), *RUNS[name][1:]]
            self.process = subprocess.Popen(command, stdout=out, stderr=err, env=ENVIRONMENT, cwd=folder)

    def result(self) -> tuple[int, str, str]:
        """(exit status, stdout, stderr), once it has finished."""
        code = self.process.wait(timeout=TIMEOUT)
        return code, self.stdout.read_text(), self.stderr.read_text()


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """Every run that a selected test of this module asks for, started at once; killed if still running at the end."""
    wanted = {item.callspec.params["name"] for item in request.session.items if "runs" in getattr(item, "fixturenames", ())}
    folder = tmp_path_factory.mktemp("benchmark_smoke")
    started = {name: Run(name, folder) for name in sorted(wanted)}
    yield started
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def finished(runs: dict, name: str) -> str:
    """The run's stdout, after checking it exited 0."""
    code, out, err = runs[name].result()
    assert code == 0, f"{RUNS[name]} exited {code}:\n{out}\n{err[-4000:]}"
    return out


def mfu_shares(out: str) -> tuple[str, list[float]]:
    """The MFU line's peak description and its percentages."""
    line = next(line for line in out.splitlines() if line.startswith("MFU against "))
    peak, shares = line.split("): ", 1)
    return peak, [float(share) for share in re.findall(r" (\d+(?:\.\d+)?(?:e-\d+)?)%", " " + shares)]


@pytest.mark.parametrize("name", ["forward"])
def test_forward_vs_hf_prints_its_table_ratio_and_mfu(runs, name):
    out = finished(runs, name)
    assert out.startswith("FLAVA tiny forward, fp32, CPU, 1 threads")
    rows = {line[:24].strip(): [float(value) for value in line[24:].split()] for line in out.splitlines()[2:5]}
    assert set(rows) == {"transformers FlavaModel", "flava_kit", "ratio flava_kit / HF"}
    assert len(rows["flava_kit"]) == 3 and len(rows["ratio flava_kit / HF"]) == 2  # samples/s, GFLOP/s, peak MiB; two ratios
    assert rows["transformers FlavaModel"][0] > 0 and rows["flava_kit"][0] > 0 and rows["ratio flava_kit / HF"][0] > 0
    peak, shares = mfu_shares(out)
    assert "measured on this CPU" in peak and "fp32 matmuls" in peak
    assert len(shares) == 2 and all(share > 0 for share in shares)


@pytest.mark.parametrize("name", ["pretrain_bf16"])
def test_pretrain_step_vs_hf_runs_in_bf16_autocast(runs, name):
    out = finished(runs, name)
    assert "tiny config, bf16 autocast, CPU" in out.splitlines()[0]
    ratios = [line for line in out.splitlines() if line.startswith("ratio ")]
    speed_ratios = [float(line.split("/ HF")[1].split()[0]) for line in ratios]
    assert len(speed_ratios) == 2 and all(value > 0 for value in speed_ratios)
    peak, shares = mfu_shares(out)
    assert "bf16 matmuls" in peak and len(shares) == 2 and all(share > 0 for share in shares)
    assert re.search(r"^total\s+\d+\.\d+\s+\d+\.\d+\s+\d+\.\d+$", out, re.MULTILINE), "the profile's total row"


@pytest.mark.parametrize("name", ["loader"])
def test_data_loader_compares_loaders_and_reports_the_pretraining_runs_mfu(runs, name):
    out = finished(runs, name)
    row = re.search(r"^\s+0\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\(ratios", out, re.MULTILINE)
    assert row and all(float(value) > 0 for value in row.groups()), out
    assert re.search(r"^\s+0\s+[\d.]+\s+[\d.]+%\s+\d+$", out, re.MULTILINE), "the pretraining run's row: samples/s, data wait, peak MiB"
    peak, shares = mfu_shares(out)
    assert "fp32 matmuls" in peak and len(shares) == 1 and shares[0] > 0


def test_data_loader_refuses_a_precision_it_would_not_use(monkeypatch, capsys):
    assert run_main(monkeypatch, "data_loader.py", "--tiny", "--precision", "bf16").code == 2
    assert "--precision applies to --pretrain's training run only" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["eval_memory"])
def test_eval_memory_checks_its_bound_and_reports_mfu(runs, name):
    out = finished(runs, name)
    assert re.search(r"peak RSS 128 / 64 images: [\d.]+ \(within the bound 1.2\)", out), out
    peak, shares = mfu_shares(out)
    assert "measured on this CPU" in peak and len(shares) == 2 and all(share > 0 for share in shares)


@pytest.mark.parametrize("name", ["eval_vs_clip"])
def test_eval_vs_clip_benchmark_agrees_and_reports_speed_and_mfu(runs, name):
    out = finished(runs, name)
    table = out[out.index("metric ") : out.index("\nzero-shot pass, images/s")]
    rows = [line for line in table.strip().splitlines()[1:] if not line.startswith("(")]
    # the folder's 7 rows, then CLIP_benchmark's wds layout: zero-shot (4), the names and prompts read, retrieval (6)
    assert [row.split()[-1] for row in rows] == ["yes"] * 18, table
    assert [" ".join(row.split()[:2]) for row in rows if "_R@" in row] == [
        f"wds {direction}_R@{k}" for direction in ("image_to_text", "text_to_image") for k in (1, 5, 10)], table  # fmt: skip
    assert "(the webdataset layout: 48 images, 240 captions, 12 classes)" in table
    assert len(re.findall(r"^ours / clip-benchmark \(median\)\s+[\d.]+", out, re.MULTILINE)) == 3  # the folder's and the two wds passes
    for section in ("webdataset zero-shot pass", "webdataset retrieval pass (5 captions each)"):
        assert re.search(rf"^{re.escape(section)}, images/s .*\nclip-benchmark\s+[\d.]+ / [\d.]+ / [\d.]+\nours\s+[\d.]+ / [\d.]+ / [\d.]+$",
                         out, re.MULTILINE), out  # fmt: skip
    _, shares = mfu_shares(out)
    assert len(shares) == 2 and all(share > 0 for share in shares)


@pytest.mark.parametrize("name", ["accumulation"])
def test_accumulation_compares_one_batch_exact_and_naive(runs, name):
    out = finished(runs, name)
    rows = re.findall(r"^(one batch|exact|naive)\s+([\d.]+) \(.*?\)\s+([\d.]+) \(", out, re.MULTILINE)
    assert [row[0] for row in rows] == ["one batch", "exact", "naive"], out
    assert all(float(row[2]) > 0 for row in rows)
    assert re.search(r"^ratio exact / one batch: peak memory [\d.]+, samples/s [\d.]+$", out, re.MULTILINE), out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where there is no GPU")
@pytest.mark.parametrize("script", SCRIPTS)
def test_device_cuda_without_a_gpu_stops_every_benchmark_with_a_message_before_any_work(monkeypatch, capsys, script):
    # A SystemExit carrying a message (not an exception): Python prints it to stderr and exits 1, without a traceback.
    message = run_main(monkeypatch, script, "--tiny", "--device", "cuda").code
    assert isinstance(message, str) and message.startswith("error: --device is 'cuda', but PyTorch sees no CUDA GPU here")
    assert "--device=cpu" in message
    assert capsys.readouterr().out == ""  # nothing measured, written or trained first


@pytest.mark.parametrize(("gpu", "kind", "tflops"), [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.5), ("NVIDIA H100 PCIe", "bf16", 756.5), ("NVIDIA H200", "bf16", 989.5),
    ("NVIDIA H200", "fp32", 67.0), ("NVIDIA H200 NVL", "bf16", 835.5), ("NVIDIA A100-SXM4-80GB", "tf32", 156.0),
    ("NVIDIA L4", "fp16", 121.0), ("NVIDIA L40S", "bf16", 362.05), ("NVIDIA A10", "bf16", 125.0),
    ("Tesla V100-SXM2-16GB", "fp16", 125.0), ("Tesla T4", "fp32", 8.1),
])  # fmt: skip
def test_gpu_peaks_are_found_by_the_name_cuda_reports(gpu, kind, tflops):
    peak = load_common().listed_peak(gpu, kind)
    assert peak.flops == tflops * 1e12 and gpu in peak.source and kind in peak.source


@pytest.mark.parametrize(("gpu", "kind"), [("NVIDIA A10G", "bf16"), ("NVIDIA A100 80GB PCIe", "fp8"), ("Tesla T4", "bf16"),
                                          ("Tesla V100-PCIE-32GB", "bf16")])  # fmt: skip
def test_an_unlisted_gpu_or_precision_is_measured_instead(gpu, kind):
    assert load_common().listed_peak(gpu, kind) is None


def test_a_measured_peak_says_so_and_is_positive():
    peak = load_common().measured_peak(torch.device("cpu"), "fp32", size=128, repeats=2)
    assert peak.flops > 0 and str(peak).endswith("(measured on this CPU: best of 2 128x128 fp32 matmuls)")


def test_flava_kits_fused_onednn_inference_counts_the_same_flops_as_the_plain_path():
    import flava_kit
    from flava_kit.layers.transformer import set_onednn_linear

    common = load_common()
    model = flava_kit.build("flava_tiny").eval()
    inputs = model.example_inputs(batch_size=2)
    counts = []
    try:
        for fused in (True, False):
            set_onednn_linear(fused)
            with torch.inference_mode():
                counts.append(common.count_flops(lambda: model(**inputs)))
    finally:
        set_onednn_linear(True)
    assert counts[0] == counts[1] > 0


def test_tiny_sizes_fill_only_the_options_left_at_their_defaults():
    import argparse

    common = load_common()
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    common.add_arguments(parser)
    args = parser.parse_args(["--tiny", "--rounds", "9"])
    common.apply_tiny(parser, args, {"batch": 2, "rounds": 1})
    assert (args.batch, args.rounds, args.device, args.precision) == (2, 9, "cpu", "fp32")


@pytest.mark.gpu
@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_runs_in_bf16_on_the_gpu(script, tmp_path):
    extra = ["--pretrain"] if script == "data_loader.py" else []
    command = [sys.executable, str(BENCHMARKS / script), "--tiny", "--device", "cuda", "--precision", "bf16", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}, cwd=tmp_path, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    peak, shares = mfu_shares(done.stdout)
    assert torch.cuda.get_device_name() in peak and shares and all(share > 0 for share in shares)


def test_shapes_geometry_prints_every_cosine_of_a_run(run_dir):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "shapes_geometry.py"), str(run_dir), "--size", "36"],
                          capture_output=True, text=True, env=ENVIRONMENT, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    header, *rows = done.stdout.strip().splitlines()
    assert header.split()[:2] == ["mean", "cosine"] and header.split()[-1] == str(run_dir)
    values = {row.rsplit(None, 1)[0].strip(): float(row.rsplit(None, 1)[1]) for row in rows}
    assert len(values) == 9 and "prompt-prompt same colour" in values and "image-image same colour, other shape" in values
    assert all(-1.0001 <= value <= 1.0001 for value in values.values())
    assert 0.0 <= values["zero-shot accuracy ('a <class>')"] <= 1.0


def test_shapes_geometry_names_a_run_it_cannot_read(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "shapes_geometry.py"), str(tmp_path / "no_such_run")],
                          capture_output=True, text=True, env=ENVIRONMENT, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "no_such_run" in done.stderr
    assert "Traceback" not in done.stderr
