"""``flava-kit``: list, describe, validate, build and copy recipes from the shell.

Invalid input exits with status 2 and the errors on stderr, without a traceback (``--debug``
shows one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from flava_kit.errors import FlavaKitError, RecipeError

# Piped output is not wrapped at 80 columns: tables stay one row per line for grep and diff.
out = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _count(module: Any) -> str:
    params = getattr(module, "parameters", None)
    if params is None:
        return "no parameters"
    total = sum(p.numel() for p in params())
    return f"{total / 1e6:.2f} M parameters" if total >= 1e4 else f"{total} parameters"


def _component_tree(module: Any, label: str, tree: Tree | None = None) -> Tree:
    """Nest every recipe-built component under its parent, with parameter counts."""
    from flava_kit.recipe import recipe_of

    kind, node = recipe_of(module)
    text = f"{label}: [bold]{node['type']}[/bold] ({kind}, {_count(module)})"
    branch = Tree(text) if tree is None else tree.add(text)
    _add_components(module, "", branch)
    return branch


def _add_components(module: Any, prefix: str, branch: Tree) -> None:
    from flava_kit.recipe import recipe_of

    # Look through modules a component builds itself (e.g. flava_pretraining's FlavaModel).
    for name, child in getattr(module, "named_children", lambda: [])():
        if recipe_of(child) is not None:
            _component_tree(child, prefix + name, branch)
        else:
            _add_components(child, f"{prefix}{name}.", branch)


def cmd_ls(args: argparse.Namespace) -> None:
    from flava_kit.registry import registry

    table = Table("kind", "name", "description", "from", box=None, pad_edge=False)
    for entry in registry.list(args.kind, args.pattern):
        origin = entry.provenance.origin
        if origin == "plug-in":
            origin = f"{entry.provenance.distribution} {entry.provenance.version}"
        table.add_row(entry.kind, registry.display_name(entry), entry.summary, origin)
    out.print(table)


def cmd_describe(args: argparse.Namespace) -> None:
    from flava_kit.registry import registry

    out.print(str(registry.describe(args.kind, args.name)), markup=False)


def cmd_schema(args: argparse.Namespace) -> None:
    from flava_kit.recipe.json_schema import recipe_json_schema

    print(json.dumps(recipe_json_schema(), indent=2))


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        err.print(f"note: {note}", markup=False)


def cmd_validate(args: argparse.Namespace) -> None:
    from flava_kit.evaluation.recipe import is_eval_recipe, load_eval_recipe
    from flava_kit.recipe import load_recipe
    from flava_kit.recipe.summary import training_summary

    if is_eval_recipe(args.recipe):  # its tasks built for real: every source opened, as training's validation does
        import yaml

        evaluation = load_eval_recipe(args.recipe, args.overrides, require_models=False)
        _print_notes(evaluation.notes)
        if args.resolved:
            print(yaml.safe_dump(evaluation.data, sort_keys=False), end="")
        else:
            out.print(f"{args.recipe}: valid", markup=False)
            for task, why in evaluation.skipped.items():  # settings.missing: skip
                out.print(f"not evaluated: tasks.{task}: {why}", markup=False)
        return
    recipe = load_recipe(args.recipe, args.overrides)
    _print_notes(recipe.notes)
    if args.resolved:
        print(recipe.to_yaml(), end="")
    else:
        out.print(f"{args.recipe}: valid", markup=False)
        for line in training_summary(recipe):  # what an extended recipe inherited, before anyone trains on it
            out.print(line, markup=False)


def cmd_build(args: argparse.Namespace) -> None:
    from flava_kit.recipe import build, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    _print_notes(recipe.notes)
    model = build(recipe)
    out.print(_component_tree(model, "model"))
    if args.run:
        _run_example(model)


def _run_example(model: Any) -> None:
    """Forward the model's own example batch once and print what came out, and how fast."""
    import time

    import torch

    if not hasattr(model, "example_inputs"):
        raise FlavaKitError(f"--run: {type(model).__name__} has no example_inputs() to run on")
    inputs = model.example_inputs()
    model.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        output = model(**inputs)
        seconds = time.perf_counter() - start
    shapes = {k: tuple(v.shape) for k, v in vars(output).items() if isinstance(v, torch.Tensor)}
    batch = next(iter(inputs.values())).shape[0]
    out.print(f"forward on an example batch of {batch} ({', '.join(f'{k} {tuple(v.shape)}' for k, v in inputs.items())}) "
              f"in {seconds:.2f} s:", markup=False)  # fmt: skip
    for name, shape in shapes.items():
        out.print(f"  {name}: {shape}", markup=False)


def cmd_cp(args: argparse.Namespace) -> None:
    from flava_kit.recipe import SHIPPED_DIR
    from flava_kit.recipe.loading import not_found

    source = SHIPPED_DIR / f"{args.name}.yaml"
    if not source.is_file():
        raise RecipeError(not_found(args.name, "", None))
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not args.force:
        raise FlavaKitError(f"{dest} exists; pass --force to overwrite it")
    shutil.copyfile(source, dest)
    out.print(f"copied {args.name} to {dest}", markup=False)


def cmd_convert(args: argparse.Namespace) -> None:
    from flava_kit.checkpoints.convert import convert

    model, notes = convert(args.src, args.dst)
    _print_notes(notes)
    out.print(f"wrote {args.dst} ({_count(model)})", markup=False)


def cmd_pretrain(args: argparse.Namespace) -> None:
    import os

    from flava_kit.recipe import load_recipe
    from flava_kit.recipe.summary import training_summary
    from flava_kit.train.run import pretrain

    recipe = load_recipe(args.recipe, args.overrides)  # what trains, said before the first step (on stderr: stdout ends with the results)
    if os.environ.get("RANK", "0") == "0":
        _print_notes(recipe.notes)
        for line in training_summary(recipe):
            err.print(line, markup=False)
    run = pretrain(recipe, (), args.out, resume=args.resume)  # validated once, above
    for line in pretrain_summary(run):
        out.print(line, markup=False)


def pretrain_summary(run: Any) -> list[str]:
    """What a finished run printed last: its evaluation's table, its wall time and where its files are."""
    lines = [run.table] if run.table else []
    minutes, seconds = divmod(round(run.wall_s), 60)
    lines.append(f"step {run.step} in {minutes} min {seconds:02d} s; run directory {run.run_dir}:")
    files = {"results.json": "the evaluation's metrics (train.eval)", "eval": "its table, per-task details and pictures", "losses.csv": "every loss of every step (plotted in losses.png)",
             "system.csv": "throughput, data-wait and compute time, memory",
             "validation.csv": "the selection metric of each evaluated checkpoint (train.select)",
             "selection": "those evaluations' tables", "checkpoints": "weights, optimizer and data position, resolved recipe",
             "checkpoints/best": "the selected checkpoint: what eval and init_from read", "answers.txt": "the VQA answer vocabulary",
             "tokenizer": "the tokenizer the run used"}  # fmt: skip
    lines += [f"  {name + ('/' if (Path(run.run_dir) / name).is_dir() else ''):<14} {what}" for name, what in files.items()
              if (Path(run.run_dir) / name).exists()]  # fmt: skip
    return lines


def cmd_data(args: argparse.Namespace) -> None:
    import torch

    from flava_kit.data.preview import draw_batch, loader_throughput
    from flava_kit.recipe import build, build_section, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if "data" not in recipe.data:
        raise FlavaKitError(f"{args.recipe}: no 'data' section to look at")
    data = build_section(recipe, "data")
    with torch.device("meta"):  # only its sizes are needed: no memory, no initialisation
        model = build(recipe)
    data.follow(model)
    table = Table("source", "type", "items per epoch", "weight", box=None, pad_edge=False)
    for name, source in data.sources.items():
        try:
            size = str(len(source))
        except TypeError:
            size = "unknown (streamed)"
        table.add_row(name, recipe.data["data"]["sources"][name]["type"], size, f"{getattr(source, 'weight', 1.0):g}")
    out.print(table)
    tokenizer = data.tokenizer(None)
    result = loader_throughput(data, tokenizer, args.batches)
    image_encoder = getattr(getattr(model, "flava", model), "image_encoder", None)
    grid = tuple(getattr(image_encoder, "grid_size", (1, 1)))
    processor = data.processor()
    draw_batch(result["batch"], tokenizer, args.out, processor.mean, processor.std, grid)
    out.print(f"{result['samples_per_s']:.1f} samples/s over {args.batches} batches of {data.batch_size} "
              f"({data.workers} workers); {result['skipped_items']} broken items skipped", markup=False)  # fmt: skip
    out.print(f"one batch drawn: {args.out}", markup=False)


def cmd_eval(args: argparse.Namespace) -> None:
    from flava_kit.evaluation import run_eval_command

    results = run_eval_command(args.targets, args.recipe, args.data, args.manifest, args.task, args.templates, args.out)
    out.print(results["table"], markup=False)
    pictures = sum(len(r["pictures"]) for by_task in results["results"].values() for r in by_task.values())
    out.print(f"wrote {results['out']}: results.json, results.csv, results.md" + (f" and {pictures} pictures" if pictures else ""), markup=False)


def cmd_embed(args: argparse.Namespace) -> None:
    from flava_kit.evaluation.embed import embed_items

    files, shapes, skipped = embed_items(args.run, args.out, args.format, args.batch_size, images=args.images, manifest=args.manifest,
                                         texts=args.texts)  # fmt: skip
    described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
    out.print(f"wrote {', '.join(str(f) for f in files)}: {described}" + (f"; skipped {skipped} unreadable items" if skipped else ""), markup=False)


def cmd_new_plugin(args: argparse.Namespace) -> None:
    from flava_kit.scaffold import new_plugin

    files = new_plugin(args.name, args.kinds, args.out)
    out.print(f"wrote {len(files)} files under {Path(args.out) / args.name}; install it with: pip install -e {Path(args.out) / args.name}", markup=False)
    for path in files:
        out.print(f"  {path}", markup=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flava-kit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered components (built-in, runtime, plug-in)")
    p.add_argument("kind", nargs="?", help="encoder, fusion, codebook, masking, loss, head or model")
    p.add_argument("pattern", nargs="?", default="*", help="glob on names, e.g. 'flava_*'")
    p.set_defaults(handler=cmd_ls)

    p = sub.add_parser("describe", help="a component's parameters, docstring and provenance")
    p.add_argument("kind")
    p.add_argument("name")
    p.set_defaults(handler=cmd_describe)

    p = sub.add_parser("schema", help="print the JSON Schema of the recipe format")
    p.set_defaults(handler=cmd_schema)

    for name, run, text in (("validate", cmd_validate, "validate a recipe without building it"),
                            ("build", cmd_build, "build a recipe and print its component tree")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.add_argument("recipe", help="a path or a shipped recipe's short name")
        p.add_argument("overrides", nargs="*", help="a.b.c=value or ~a.b")
        p.set_defaults(handler=run)
        if name == "validate":
            p.add_argument("--resolved", action="store_true", help="print the resolved recipe (every default explicit)")
        else:
            p.add_argument("--run", action="store_true", help="then run one forward pass on an example batch")

    p = sub.add_parser("cp", help="copy a shipped recipe out to edit")
    p.add_argument("name")
    p.add_argument("dest")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=cmd_cp)

    p = sub.add_parser("pretrain", help="pretrain as a recipe's model, data and train sections say")
    p.add_argument("recipe", help="a path or a shipped recipe's short name (e.g. demo)")
    p.add_argument("overrides", nargs="*", help="a.b.c=value or ~a.b")
    p.add_argument("--out", default="runs/pretrain", help="the run directory (default runs/pretrain)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.set_defaults(handler=cmd_pretrain)

    p = sub.add_parser("data", help="draw one batch of a recipe's data and measure the loader's samples/s")
    p.add_argument("recipe", help="a path or a shipped recipe's short name")
    p.add_argument("overrides", nargs="*", help="a.b.c=value or ~a.b")
    p.add_argument("--out", default="batch.png", help="the PNG to write (default batch.png)")
    p.add_argument("--batches", type=int, default=20, help="batches to read for the throughput figure (default 20)")
    p.set_defaults(handler=cmd_data)

    p = sub.add_parser("eval", help="evaluate models on an eval recipe's tasks: one table, a column per model")
    p.add_argument("targets", nargs="*", help="models (run directories, HF FLAVA directories, model recipes), an eval recipe file, "
                                              "and a.b=value overrides of the eval recipe")  # fmt: skip
    p.add_argument("--recipe", help="the eval recipe (a path or a shipped name such as eval_shapes); default: the run's own train.eval")
    p.add_argument("--data", help="shorthand for zero-shot on labelled images: a folder with a subfolder per class, or a manifest "
                                  "with a label column and classnames.txt beside it")  # fmt: skip
    p.add_argument("--manifest", help="shorthand for retrieval among image-text pairs (JSONL or CSV)")
    p.add_argument("--task", choices=["zero-shot", "retrieval"], default="zero-shot", help="which shorthand --data/--manifest is")
    p.add_argument("--templates", help="prompt templates for --data, one per line with {} for the class name")
    p.add_argument("--out", help="the folder for results.json, results.csv, results.md and pictures (default RUN/eval/NAME "
                                 "for one run, else eval/NAME)")  # fmt: skip
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("embed", help="write image and/or text embeddings of a run's model for your own search or clustering")
    p.add_argument("run", help="a run directory written by pretrain")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of images (searched recursively)")
    source.add_argument("--manifest", help="image-text pairs (JSONL or CSV): both embeddings")
    source.add_argument("--texts", help="a text file, one text per line")
    p.add_argument("--out", required=True, help="the directory to write (embeddings and keys.txt)")
    p.add_argument("--format", choices=["safetensors", "npy"], default="safetensors")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("new-plugin", help="write a plug-in package skeleton: a working component per kind, entry points, tests")
    p.add_argument("name", help="the distribution's name (its import package: the same with '-' as '_')")
    p.add_argument("--kinds", nargs="+", default=["encoder", "loss", "source", "logger", "task"],
                   help="the kinds to write a component of (default: encoder loss source logger task)")
    p.add_argument("--out", default=".", help="the folder to write the package into (default: here)")
    p.set_defaults(handler=cmd_new_plugin)

    p = sub.add_parser("convert", help="write an HF FLAVA directory or a run as a complete HF FLAVA directory (weights, tokenizer, processor)")
    p.add_argument("src", help="an HF FlavaModel or FlavaForPreTraining directory (or HF Hub id), or a run directory or one of its checkpoints")
    p.add_argument("dst", help="the directory to write (HF format, tokenizer, preprocessor_config.json, plus flava_kit_recipe.yaml)")
    p.set_defaults(handler=cmd_convert)
    return parser


PEER_LOST = ("closed by peer", "reset by peer", "remote worker", "connectFullMesh")
"""What gloo's errors say when another rank of the job died (it is not this rank's fault)."""


def _lost_a_rank(exc: Exception) -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and any(text in str(exc) for text in PEER_LOST)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flava-kit`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        return 130
    except (FlavaKitError, OSError) as exc:  # bad input: a recipe, a file, a checkpoint, a directory
        if args.debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return 2
    except Exception as exc:  # not the input's fault: still one paragraph, the traceback on request
        if args.debug:
            raise
        if _lost_a_rank(exc):
            err.print(f"error: rank {os.environ.get('RANK', '?')}: another rank of this torchrun job stopped ({str(exc).splitlines()[0][:200]}); "
                      f"that rank's own output says why. Under torchrun --max-restarts N the workers start again and "
                      f"resume from the latest checkpoint.", markup=False)  # fmt: skip
            return 1
        err.print(f"error: {type(exc).__name__}: {exc}\nThis looks like a bug in flava_kit or a plug-in; "
                  f"run again with --debug to see the traceback.", markup=False)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
