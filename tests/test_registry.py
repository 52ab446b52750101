"""The registry: registration, look-up, listing, describe, provenance, thread safety."""

from __future__ import annotations

import threading

import pytest
import torch

from flava_kit import register, registry
from flava_kit.errors import RegistryError
from flava_kit.registry import KINDS


def test_builtins_are_registered_with_provenance():
    names = {(e.kind, e.name) for e in registry.list()}
    assert {("encoder", "flava_vit"), ("encoder", "flava_text"), ("fusion", "flava_multimodal"), ("model", "flava")} <= names
    entry = registry.entry("encoder", "flava_vit")
    assert entry.provenance.origin == "built-in"
    assert entry.provenance.module == "flava_kit.encoders.flava_vit"
    assert entry.location.endswith("flava_kit/encoders/flava_vit.py:15") or "flava_vit.py:" in entry.location


def test_register_runtime_component_and_describe(scratch_registry):
    @register("head", "scaled_linear")
    class ScaledLinear(torch.nn.Module):
        """A linear layer with a fixed output scale."""

        def __init__(self, in_features: int, out_features: int = 4, scale: float = 2.0):
            super().__init__()

    assert registry.get("head", "scaled_linear") is ScaledLinear
    described = registry.describe("head", "scaled_linear")
    assert described.provenance.origin == "runtime"
    assert described.provenance.module == __name__
    assert described.summary == "A linear layer with a fixed output scale."
    params = {p.name: p for p in described.parameters}
    assert params["in_features"].required and params["in_features"].annotation == "int"
    assert params["scale"].default == 2.0 and not params["scale"].required
    assert f"{__file__}:" in described.location


def test_factory_functions_register(scratch_registry):
    @register("head", "identity_head")
    def identity_head(width: int = 3) -> torch.nn.Module:
        """An identity head."""
        return torch.nn.Identity()

    assert registry.get("head", "identity_head") is identity_head
    assert [p.name for p in registry.describe("head", "identity_head").parameters] == ["width"]


def test_duplicate_name_is_an_error_unless_replace(scratch_registry):
    register("loss", "dup")(lambda: None)
    with pytest.raises(RegistryError, match=r"loss 'dup' is already registered .*replace=True"):
        register("loss", "dup")(lambda: 1)
    replacement = lambda: 2  # noqa: E731
    register("loss", "dup", replace=True)(replacement)
    assert registry.get("loss", "dup") is replacement


def test_builtin_cannot_be_overwritten_silently(scratch_registry):
    with pytest.raises(RegistryError, match="already registered .*built-in"):
        register("encoder", "flava_vit")(lambda: None)


@pytest.mark.parametrize("bad", ["", "a:b", "a.b"])
def test_bad_names_are_refused(scratch_registry, bad):
    with pytest.raises(RegistryError, match="names must be non-empty"):
        register("loss", bad)(lambda: None)


def test_unknown_name_lists_close_matches_and_kind():
    with pytest.raises(RegistryError) as info:
        registry.get("encoder", "flava_vitt")
    message = str(info.value)
    assert "searched kind 'encoder'" in message and "'flava_vit'" in message


def test_name_of_another_kind_is_pointed_out():
    with pytest.raises(RegistryError, match="'flava_vit' is a encoder, not a fusion"):
        registry.get("fusion", "flava_vit")


def test_unknown_kind_suggests_the_right_one():
    with pytest.raises(RegistryError, match="Did you mean 'encoder'"):
        registry.list("encoders")


def test_list_filters_by_kind_and_glob():
    found = [registry.display_name(e) for e in registry.list("encoder", "flava_*")]
    assert found == ["flava_text", "flava_kit_demo_plugin:flava_vit", "flava_vit"]  # the demo plug-in's too
    assert [e.name for e in registry.list("encoder", "flava_kit_demo_plugin:*")] == ["flava_vit", "patch_mlp", "shared_name"]
    assert all(e.kind == "fusion" for e in registry.list("fusion"))
    assert registry.list("model", "nothing*") == []
    assert {e.kind for e in registry.list()} <= set(KINDS)


def test_registration_is_thread_safe(scratch_registry):
    barrier = threading.Barrier(8)
    errors: list[Exception] = []

    def worker(index: int) -> None:
        barrier.wait()
        for j in range(50):
            register("head", f"thread_{index}_{j}")(lambda: None)
        try:  # every thread races for the same name: exactly one wins
            register("head", "contested")(lambda: index)
        except RegistryError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(registry.list("head", "thread_*")) == 400
    assert len(errors) == 7


def test_every_package_imports_first_in_a_fresh_interpreter():
    import subprocess
    import sys

    packages = ["encoders", "fusion", "codebooks", "masking", "heads", "losses", "models", "checkpoints", "layers", "recipes", "cli"]
    code = "import flava_kit.{}; from flava_kit import registry; registry.list()"
    runs = [subprocess.Popen([sys.executable, "-c", code.format(p)], stderr=subprocess.PIPE, text=True) for p in packages]
    failures = {p: run.communicate()[1][-500:] for p, run in zip(packages, runs) if run.wait() != 0}
    assert not failures, failures
