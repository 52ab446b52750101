"""The flava-kit command line: output, exit status 2 on bad input, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flava_kit.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ls_lists_builtins_and_plugins_with_descriptions(capsys):
    code, out, _ = run(capsys, "ls")
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "FLAVA's ViT image encoder" in rows["flava_vit"] and "built-in" in rows["flava_vit"]
    assert "flava_kit_demo_plugin 0.4.0" in rows["patch_mlp"]
    assert "flava_kit_demo_plugin:shared_name" in rows


def test_ls_kind_and_pattern(capsys):
    _, out, _ = run(capsys, "ls", "fusion", "flava_*")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["flava_multimodal"]


def test_describe(capsys):
    code, out, _ = run(capsys, "describe", "fusion", "flava_multimodal")
    assert code == 0
    assert "num_layers: int (>= 0, <= 4096)  (default 6)" in out and "built-in (flava_kit.fusion.flava_multimodal)" in out


def test_validate_and_resolved(capsys):
    code, out, _ = run(capsys, "validate", "flava_tiny", "model.fusion.num_layers=1")
    assert code == 0 and "valid" in out
    code, out, _ = run(capsys, "validate", "--resolved", "flava_tiny")
    assert "layer_norm_eps: 1.0e-12" in out


def test_build_prints_the_component_tree_with_parameter_counts(capsys):
    code, out, _ = run(capsys, "build", "recipes/flava_full.yaml")
    assert code == 0
    assert "model: flava (model, 241.36 M parameters)" in out
    assert "image_encoder: flava_vit (encoder, 86.39 M parameters)" in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["validate", "flava_tiny", "model.fusion.numlayers=1"], "model.fusion.numlayers"),
        (["build", "nope"], "cannot find recipe 'nope'"),
        (["describe", "encoder", "flava_vitt"], "Did you mean 'flava_vit'"),
        (["ls", "encoders"], "Did you mean 'encoder'"),
        (["build", "flava_tiny", "model.fusion.num_heads=5"], "model.fusion.hidden_size: hidden_size 64 is not a multiple of num_heads 5"),
    ],
)
def test_bad_input_exits_2_with_the_error_on_stderr(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err and out == ""


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="cannot find recipe"):
        main(["--debug", "build", "nope"])


def test_cp_copies_a_shipped_recipe(capsys, tmp_path):
    code, _, _ = run(capsys, "cp", "flava_tiny", str(tmp_path))
    assert code == 0 and (tmp_path / "flava_tiny.yaml").is_file()
    code, _, err = run(capsys, "cp", "flava_tiny", str(tmp_path))
    assert code == 2 and "--force" in err


def test_schema_is_json(capsys):
    _, out, _ = run(capsys, "schema")
    assert json.loads(out)["title"] == "flava_kit recipe"


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "flava-kit"  # beside the interpreter running the tests
    assert exe.is_file(), "the flava-kit console script is not installed"
    result = subprocess.run([str(exe), "validate", "flava_tiny", "model.fusion.num_layrs=1"], capture_output=True, text=True)
    assert result.returncode == 2 and "model.fusion.num_layrs" in result.stderr and "Traceback" not in result.stderr


def test_build_run_forwards_an_example_batch(capsys):
    code, out, _ = run(capsys, "build", "flava_tiny", "--run")
    assert code == 0
    assert "multimodal_embeddings: (2, 34, 64)" in out  # 1 [CLS_M] + 17 image + 16 text tokens
