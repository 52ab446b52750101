"""``pretrain``: a recipe with ``model``, ``data`` and ``train`` sections in, a trained run directory out."""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist

from flava_kit.data.sources.base import Broken, DataError
from flava_kit.errors import Problem, RecipeError
from flava_kit.devices import resolve_device
from flava_kit.train.device import process_group_backend
from flava_kit.train.restarts import init_process_group, resume_after_restart
from flava_kit.recipe import build, build_section, load_recipe
from flava_kit.recipe.tree import Recipe


@dataclass
class PretrainRun:
    """What :func:`pretrain` leaves: the trained model, where its files are, the last step, and, when
    the recipe names an eval recipe (``train.eval``), its ``metrics`` (``TASK_METRIC`` -> value) and
    ``table``; ``wall_s`` is the seconds from the call to the end of that evaluation.

    Under FSDP, rank 0's ``model`` is whole; other ranks keep their shard.
    """

    model: torch.nn.Module
    run_dir: Path
    step: int
    skipped_items: int
    metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    table: str = ""


def pretrain(source: Any, overrides: Iterable[str] = (), run_dir: str | Path = "runs/pretrain", resume: bool = False,
             stop_after: int | None = None) -> PretrainRun:  # fmt: skip
    """Train as the recipe says; under ``torchrun`` each process trains one DDP rank (gloo on CPU).
    ``source`` is what :func:`~flava_kit.recipe.load_recipe` takes, or a recipe it returned (used as is).

    Writes ``run_dir``: checkpoints, ``losses.csv``, ``losses.png``, ``tokenizer/`` (a copy of
    ``data.tokenizer``'s, which ``--resume`` and evaluation read), a VQA model's ``answers.txt`` and, with a
    ``train.eval`` recipe, ``eval/NAME/`` (what ``flava-kit eval RUN`` writes) and ``results.json``
    (the step, wall time and every ``TASK_METRIC`` of that evaluation).
    """
    from flava_kit.train.trainer import Trainer

    started = time.perf_counter()
    recipe = source if isinstance(source, Recipe) else load_recipe(source, overrides)  # a Recipe: already validated
    if "data" not in recipe.data:
        raise RecipeError(Problem("data", "pretraining needs a 'data' section", expected="data: {sources: {...}, image_masking: ..., text_masking: ...}"))
    data, train = build_section(recipe, "data"), build_section(recipe, "train")
    device = resolve_device(train.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        init_process_group(process_group_backend(device))
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(data.seed)  # the same initial weights on every rank and in every run
    run_dir = Path(run_dir)
    resume = resume_after_restart(run_dir, resume, rank)
    fill_answer_vocabulary(recipe.data, data, run_dir if rank == 0 else None)
    model = build(recipe)
    data.follow(model)
    if resume and (run_dir / "tokenizer").is_dir():  # the tokenizer its checkpoints learnt, wherever data.tokenizer went since
        from flava_kit.data.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(run_dir / "tokenizer")
    else:
        tokenizer = data.tokenizer(run_dir / "tokenizer" if rank == 0 else None)  # one writer under torchrun
    text_vocab = model.flava.text_encoder.vocab_size
    if len(tokenizer) > text_vocab:
        raise RecipeError(Problem("model.text_encoder.vocab_size", f"{text_vocab} is smaller than the tokenizer's {len(tokenizer)} tokens",
                                  suggestion=f"set model.text_encoder.vocab_size={len(tokenizer)} or more"))  # fmt: skip
    if train.init_from and not resume:
        from flava_kit.train.checkpoint import load_matching_weights

        untouched, unused = load_matching_weights(train.init_from, model)
        if rank == 0:
            print(f"init_from {train.init_from}: {len(untouched)} model tensors kept their initial values "
                  f"({', '.join(untouched[:4])}{' ...' if len(untouched) > 4 else ''}); {len(unused)} checkpoint tensors unused")  # fmt: skip
    if train.freeze or train.lora is not None:  # after init_from's weights (a resume's come with the adapters), before the optimizer
        from flava_kit.train.param_groups import apply_fine_tuning

        apply_fine_tuning(model, train)
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    selector = None
    if train.select is not None:  # on every rank (checkpoints are collectives); rank 0 alone evaluates
        from flava_kit.evaluation import evaluate_run
        from flava_kit.train.selection import Selector

        def evaluate_checkpoint(checkpoint: Path) -> dict:
            return evaluate_run(checkpoint, train.select.eval, out=run_dir / "selection" / checkpoint.name)

        selector = Selector(train.select, run_dir, evaluate_checkpoint)
    trainer = Trainer(model, train, data.batches(tokenizer, rank, world_size, train.accumulation), run_dir, recipe.data, workers=data.workers, device=device,
                      selector=selector)  # fmt: skip
    step = trainer.fit(resume=resume, stop_after=stop_after)
    finished = step == train.steps or trainer.stopped_early
    if train.fsdp:  # gather the shards (every rank takes part); rank 0 gets, evaluates and returns a whole model
        weights = trainer.full_state_dict()
        if rank == 0:
            model = build(recipe)
            model.load_state_dict(weights)
    run = PretrainRun(model, run_dir, step, trainer.skipped_items())
    if train.eval and finished and rank == 0:
        from flava_kit.evaluation import evaluate_run

        results = evaluate_run(run_dir, train.eval)  # the selected checkpoint, with train.select
        run.metrics, run.table = results["metrics"][run_dir.name], results["table"]
        run.wall_s = time.perf_counter() - started
        summary = {"step": step, "skipped_items": run.skipped_items, "wall_s": round(run.wall_s, 1), **run.metrics,
                   "eval": str(results["out"].relative_to(run_dir))}  # fmt: skip
        if selector is not None:
            summary["selected"] = {"step": selector.state["best_step"], train.select.metric: selector.state["best"],
                                   "stopped_early": trainer.stopped_early}  # fmt: skip
        (run_dir / "results.json").write_text(json.dumps(summary, indent=2))
    run.wall_s = run.wall_s or time.perf_counter() - started
    if dist.is_initialized():  # the other ranks wait for rank 0's evaluation: all leave together
        dist.barrier()
    return run


def fill_answer_vocabulary(recipe: dict, data: Any, run_dir: Path | None) -> None:
    """A VQA model's answer vocabulary, in the recipe the run saves and in ``answers.txt`` in
    ``run_dir``: the list an ``answers`` file holds (so the run no longer needs the file), or, with
    ``answers`` unset, the ``max_answers`` answers given most often in the training sources (one
    pass over them)."""
    model = recipe.get("model") or {}
    if model.get("type") != "flava_vqa" or isinstance(model.get("answers"), list):
        return
    from flava_kit.data.answers import read_vocabulary, top_answers
    from flava_kit.evaluation.passes import raw_items
    from flava_kit.models.flava_vqa import FlavaForVQA

    if model.get("answers") is not None:
        model["answers"] = read_vocabulary(model["answers"])
        _write_answers(model["answers"], run_dir)
        return

    def answer_lists():
        for name, source in data.sources.items():
            for _, raw in raw_items(source):
                if isinstance(raw, Broken):
                    continue
                try:
                    yield source.decode(raw).get("answers") or []
                except DataError:
                    continue  # a broken item: training skips it too

    default = inspect.signature(FlavaForVQA).parameters["max_answers"].default
    model["answers"] = top_answers(answer_lists(), model.get("max_answers", default))
    _write_answers(model["answers"], run_dir)


def _write_answers(answers: list[str], run_dir: Path | None) -> None:
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "answers.txt").write_text("".join(f"{answer}\n" for answer in answers))
