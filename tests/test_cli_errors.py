"""Bad input to every subcommand: a non-zero exit and a one-paragraph message, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flava_kit.cli import main

TINY = str(Path(__file__).parent / "fixtures" / "tiny_pretrain.yaml")


def damaged(run_dir: Path, tmp_path: Path, how: str) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    weights = next((copy / "checkpoints").glob("step-*")) / "model.safetensors"
    if how == "copy":
        return copy
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:  # wrong keys: a valid safetensors file of some other model
        from safetensors.torch import save_file
        import torch

        save_file({"not.a.flava.weight": torch.zeros(2)}, weights)
    return copy


def shards(tmp_path: Path, count: int, cut: bool = False) -> str:
    from tests.shards import make_shards

    urls = make_shards(tmp_path / "shards", shards=count, per_shard=8)
    if cut:
        tar = tmp_path / "shards" / "00000.tar"
        tar.write_bytes(tar.read_bytes()[:5000])
    return urls


def hf_directory(tmp_path: Path, how: str) -> Path:
    from transformers import FlavaConfig, FlavaModel

    config = FlavaConfig(
        image_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "image_size": 32, "patch_size": 16},
        text_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "vocab_size": 50},
        multimodal_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
        projection_dim=8,
    )
    path = tmp_path / "hf"
    FlavaModel(config).save_pretrained(path)
    weights = path / "model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    else:
        from safetensors.torch import load_file, save_file

        state = load_file(weights)
        state["image_model.unexpected"] = state.pop(next(iter(state)))
        save_file(state, weights)
    return path


CASES = {
    "ls: unknown kind": (lambda run, tmp: ["ls", "encoders"], "unknown kind 'encoders'"),
    "describe: unknown name": (lambda run, tmp: ["describe", "encoder", "flava_vitt"], "Did you mean 'flava_vit'"),
    "validate: missing file": (lambda run, tmp: ["validate", str(tmp / "missing.yaml")], "cannot find recipe"),
    "validate: bad override": (lambda run, tmp: ["validate", "flava_tiny", "model.fusion.num_layers=[1"], "is not valid YAML"),
    "validate: bad value": (lambda run, tmp: ["validate", "flava_tiny", "model.image_encoder.hidden_size=-4"], "model.image_encoder.hidden_size"),
    "build: bad recipe": (lambda run, tmp: ["build", "flava_tiny", "model.fusion.type=flava_vti"], "model.fusion.type"),
    "cp: unknown recipe": (lambda run, tmp: ["cp", "flava_tinyy", str(tmp)], "cannot find recipe 'flava_tinyy'"),
    "pretrain: missing file": (lambda run, tmp: ["pretrain", str(tmp / "missing.yaml"), "--out", str(tmp / "out")], "cannot find recipe"),
    "pretrain: no data section": (lambda run, tmp: ["pretrain", "flava_tiny", "--out", str(tmp / "out")], "pretraining needs a 'data' section"),
    "pretrain: resume without a run": (lambda run, tmp: ["pretrain", TINY, "--out", str(tmp), "--resume"], "no checkpoint"),
    "pretrain: resume from a truncated checkpoint": (lambda run, tmp: ["pretrain", TINY, "train.steps=2", "--out", str(damaged(run, tmp, "truncated")), "--resume"], "model.safetensors: corrupt, truncated or missing"),
    "pretrain: missing shards": (lambda run, tmp: ["pretrain", TINY, f"data.sources.web={{type: webdataset, urls: '{tmp}/{{000..003}}.tar'}}", "--out", str(tmp / "out")], "4 of 4 shards not found"),
    "pretrain: more readers than shards": (lambda run, tmp: ["pretrain", TINY, "~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{shards(tmp, 1)}'}}", "data.workers=2", "--out", str(tmp / "out")], "1 shards to split over 2 readers"),
    "pretrain: resume with other workers": (lambda run, tmp: ["pretrain", TINY, "data.workers=2", "train.steps=2", "--out", str(damaged(run, tmp, "copy")), "--resume"], "resume with the same"),
    "data: corrupt shard, strict": (lambda run, tmp: ["data", TINY, "~data.sources.shapes", f"data.sources.web={{type: webdataset, urls: '{shards(tmp, 1, cut=True)}'}}", "data.strict=true", "--out", str(tmp / "b.png")], "00000.tar"),
    "data: validate mismatch": (lambda run, tmp: ["data", TINY, "data.image_size=48", "--out", str(tmp / "b.png")], "differs from model.image_encoder.image_size 32"),
    "eval: not a run": (lambda run, tmp: ["eval", str(tmp)], "no checkpoint to evaluate"),
    "eval: truncated checkpoint": (lambda run, tmp: ["eval", str(damaged(run, tmp, "truncated")), "--recipe", "eval_shapes"], "model.safetensors: corrupt, truncated or missing"),
    "eval: wrong keys": (lambda run, tmp: ["eval", str(damaged(run, tmp, "wrong keys")), "--recipe", "eval_shapes"], "does not match the model"),
    "new-plugin: existing folder": (lambda run, tmp: ["new-plugin", tmp.name, "--out", str(tmp.parent)], "exists already"),
    "embed: not a run": (lambda run, tmp: ["embed", str(tmp), "--texts", str(tmp / "t.txt"), "--out", str(tmp / "e")], "no checkpoint to evaluate"),
    "embed: missing folder": (lambda run, tmp: ["embed", str(run), "--images", str(tmp / "nothing"), "--out", str(tmp / "e")], "no such image folder"),
    "convert: missing directory": (lambda run, tmp: ["convert", str(tmp / "nothing"), str(tmp / "out")], "nothing"),
    "convert: truncated safetensors": (lambda run, tmp: ["convert", str(hf_directory(tmp, "truncated")), str(tmp / "out")], "model.safetensors"),
    "convert: wrong keys": (lambda run, tmp: ["convert", str(hf_directory(tmp, "wrong keys")), str(tmp / "out")], "image_model.unexpected"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_a_message_not_a_traceback(case, run_dir, tmp_path, capsys):
    make_argv, needle = CASES[case]
    argv = make_argv(run_dir, tmp_path)
    capsys.readouterr()  # what making the bad input printed
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 0
    assert needle in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    # the message is an "error: " line (pretrain may first list what it trains on)
    assert any(line.startswith("error: ") for line in captured.err.splitlines()), captured.err


def test_every_subcommand_has_a_bad_input_case():
    from flava_kit.cli import _parser

    subcommands = set(_parser()._subparsers._group_actions[0].choices) - {"schema"}  # schema takes no input
    assert subcommands <= {case.split(":")[0] for case in CASES}


def test_an_unexpected_error_is_one_paragraph_with_a_hint(monkeypatch, capsys):
    import flava_kit.cli as cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_schema", broken)
    assert main(["schema"]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError: division by zero" in err and "--debug" in err and "Traceback" not in err


def test_a_rank_whose_peer_died_says_so_not_that_flava_kit_has_a_bug(monkeypatch, capsys):
    """What gloo raises on a surviving rank when torchrun's other worker was killed."""
    import flava_kit.cli as cli

    def lost(args):
        raise RuntimeError("[../gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:9439. This is typically caused by ...")

    monkeypatch.setattr(cli, "cmd_schema", lost)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["schema"]) == 1
    err = capsys.readouterr().err
    assert "rank 0: another rank of this torchrun job stopped" in err and "--max-restarts" in err and "bug" not in err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no peer to lose, so the same text is a bug report
    assert main(["schema"]) == 1
    assert "looks like a bug" in capsys.readouterr().err


def test_the_console_script_prints_no_traceback_for_a_missing_file(tmp_path):
    exe = Path(sys.executable).parent / "flava-kit"
    result = subprocess.run([str(exe), "eval", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nowhere" in result.stderr
