"""The ``data:`` and ``train:`` sections of a recipe: their constructor signatures are their schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flava_kit.constraints import Probability, Size, Steps
from flava_kit.contracts import ImageMasking, MetricLogger, Source, TextMasking
from flava_kit.data.tokenizer import run_tokenizer
from flava_kit.models.lora import LoraSettings, settings_of


class DataConfig:
    """Where pretraining batches come from, and how they are processed and masked.

    ``sources`` names the data sources (registry kind ``source``, see
    :class:`flava_kit.contracts.Source`): ``{laion: {type: webdataset, urls: ..., weight: 3},
    wiki: {type: text_lines, path: ...}}``; in a recipe that ``extends`` another, ``name: null``
    drops a source it inherits. Each batch comes from one source, drawn by the sources'
    ``weight``. ``task`` says what a batch holds: ``pretrain`` (masked images and texts, ITM
    negatives), ``retrieval`` (image-text pairs with ITM negatives, nothing masked: contrastive and
    ITM fine-tuning), ``classify`` (images, texts or text pairs with a ``label``: a fine-tuned
    classifier) or ``vqa`` (an image, its question and ``answer_scores`` over the model's answer
    vocabulary).

    Settings that follow from the model are taken from it unless set (and ``flava-kit validate``
    rejects a mismatch): ``image_size`` (the image encoder's), ``codebook_size`` (the codebook's
    input size; none without a codebook), ``text_length`` (the text encoder's position limit), the
    image masking's ``grid`` (the image encoder's patch grid). ``tokenizer`` is a local
    tokenizer directory; without one, a tokenizer is built from the synthetic dataset's
    vocabulary. ``crop_scale`` (e.g. ``[0.9, 1.0]``) and ``flip`` turn on training augmentation
    (off by default, so pixels match HF's processor). ``workers`` DataLoader processes read the
    sources in parallel; broken items are skipped and counted unless ``strict``.
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """Settings taken from the model must agree with it where a recipe sets them anyway."""
        model = recipe.get("model", {})
        image, text, codebook = (model.get(slot) or {} for slot in ("image_encoder", "text_encoder", "codebook"))
        for key, other, value, what in (
            ("image_size", "model.image_encoder.image_size", image.get("image_size"), "the image encoder's input size"),
            ("codebook_size", "model.codebook.input_size", codebook.get("input_size"), "the codebook's input size"),
        ):
            if node.get(key) is not None and isinstance(value, int) and node[key] != value:
                yield (path + (key,), f"{node[key]} differs from {other} {value} ({what})", f"remove data.{key}: it follows the model")
        limit = text.get("max_position_embeddings")
        if node.get("text_length") is not None and isinstance(limit, int) and node["text_length"] > limit:
            yield (path + ("text_length",), f"{node['text_length']} tokens exceed model.text_encoder.max_position_embeddings {limit}",
                   f"set data.text_length to {limit} or less")  # fmt: skip
        vocab = text.get("vocab_size")
        if isinstance(vocab, int) and (not node.get("tokenizer") or Path(node["tokenizer"]).is_dir()):
            size = len(run_tokenizer(node.get("tokenizer")))
            if size > vocab:
                which = "the tokenizer" if node.get("tokenizer") else "the tokenizer built from the synthetic vocabulary (no data.tokenizer set)"
                yield (path + ("tokenizer",), f"{which} has {size} tokens, more than model.text_encoder.vocab_size {vocab}",
                       f"set model.text_encoder.vocab_size={size} or more")  # fmt: skip

    def __init__(
        self,
        image_masking: ImageMasking | None = None,
        text_masking: TextMasking | None = None,
        sources: dict[str, Source] | None = None,
        *,
        task: Literal["pretrain", "retrieval", "classify", "vqa"] = "pretrain",
        tokenizer: str | None = None,
        batch_size: Steps = 32,
        text_length: Size | None = None,
        image_size: Size | None = None,
        codebook_size: Size | None = None,
        crop_scale: tuple[Probability, Probability] | None = None,
        flip: bool = False,
        itm_negative_prob: Probability = 0.1,
        workers: Annotated[int, Field(ge=0, le=256)] = 0,
        strict: bool = False,
        seed: int = 0,
    ):
        self.image_masking, self.text_masking, self.task = image_masking, text_masking, task
        if task == "pretrain" and (image_masking is None or text_masking is None):
            raise ValueError("pretraining needs image_masking and text_masking (e.g. {type: block} and {type: mlm})")
        if not sources:
            raise ValueError("no data: name at least one source, e.g. sources: {shapes: {type: synthetic}}")
        if crop_scale is not None and not 0 < crop_scale[0] <= crop_scale[1]:
            raise ValueError(f"crop_scale {list(crop_scale)}: expected [low, high] with 0 < low <= high <= 1")
        self.sources, self.tokenizer_path = dict(sources), tokenizer
        self.batch_size, self.text_length, self.image_size, self.codebook_size = batch_size, text_length, image_size, codebook_size
        self.crop_scale, self.flip = crop_scale, flip
        self.itm_negative_prob, self.workers, self.strict, self.seed = itm_negative_prob, workers, strict, seed
        self.answers: list[str] | None = None  # a VQA model's answer vocabulary (see follow)

    def follow(self, model: Any) -> "DataConfig":
        """Take the settings left unset from ``model`` (its image encoder, codebook and text encoder)."""
        from flava_kit.checkpoints.loading import model_input_sizes

        image = getattr(getattr(model, "flava", model), "image_encoder", None)
        image_size, text_length = model_input_sizes(model)
        self.image_size = self.image_size or image_size
        if self.codebook_size is None:  # a model without a codebook needs no codebook pixels: None stays
            self.codebook_size = getattr(getattr(model, "codebook", None), "input_size", None)
        self.text_length = self.text_length or text_length
        self.answers = getattr(model, "answers", None)
        if self.task == "vqa" and not hasattr(model, "answers"):  # None until pretrain fills it from the data
            from flava_kit.errors import BuildError

            raise BuildError("data.task vqa: the model has no answer vocabulary (model.answers: use a flava_vqa model)", "data.task")
        grid = getattr(image, "grid_size", None)
        if self.image_masking is not None and grid is not None:
            self._follow_grid(tuple(grid), image)
        return self

    def _follow_grid(self, grid: tuple[int, int], image: Any) -> None:
        """The image masking takes the image encoder's patch grid (or must equal it, if set)."""
        from flava_kit.errors import BuildError

        masking, size = self.image_masking, getattr(image, "image_size", None)
        try:
            if hasattr(masking, "follow_grid"):
                masking.follow_grid(grid)
            elif getattr(masking, "num_patches", None) != grid[0] * grid[1]:
                raise ValueError(f"it masks {getattr(masking, 'num_patches', None)} patches, the model's image encoder has {grid[0] * grid[1]}")
        except ValueError as exc:
            model = f" (model.image_encoder: image_size {size}, patch size {size // grid[0]})" if size else ""
            raise BuildError(f"data.image_masking.grid: {exc}{model}", "data.image_masking.grid") from None

    def tokenizer(self, directory: str | Path | None) -> Any:
        """The run's tokenizer (see :func:`run_tokenizer`), saved in ``directory`` if given."""
        return run_tokenizer(self.tokenizer_path, directory)

    def processor(self, augment: bool = False) -> Any:
        """The image processor at the model's sizes (call :meth:`follow` first); with ``augment``, the recipe's augmentation."""
        from flava_kit.data.processor import ImageProcessor

        if self.image_size is None:
            raise ValueError("data.image_size is unset: call DataConfig.follow(model) first")
        extra = {"crop_scale": self.crop_scale, "flip": self.flip} if augment else {}
        return ImageProcessor(self.image_size, self.codebook_size, **extra)

    def batches(self, tokenizer: Any, rank: int = 0, world_size: int = 1, accumulation: int = 1) -> Any:
        """The run's batches (see :class:`~flava_kit.data.batches.PretrainingBatches`): one per step,
        of ``accumulation`` × ``batch_size`` items (the trainer splits them into micro-batches)."""
        from flava_kit.data.batches import PretrainingBatches

        return PretrainingBatches(
            self.sources, batch_size=self.batch_size * accumulation, processor=self.processor(augment=True), tokenizer=tokenizer,
            text_length=self.text_length, image_masking=self.image_masking, text_masking=self.text_masking,
            itm_negative_prob=self.itm_negative_prob, seed=self.seed, rank=rank, world_size=world_size, strict=self.strict,
            task=self.task, answers=self.answers,
        )  # fmt: skip


class ModelSelection(BaseModel):
    """``train.select``: every ``every`` steps, evaluate the checkpoint with ``eval`` (an eval recipe
    on a validation split: a shipped name, a path or an inline mapping) and keep the checkpoint with
    the best ``metric`` (a ``TASK_METRIC`` of that evaluation, e.g. ``val_accuracy``; its direction
    is the task's) as ``checkpoints/best``. With ``patience``, stop when that many evaluations in a
    row did not improve on the best."""

    model_config = ConfigDict(extra="forbid")

    eval: str | dict
    metric: str
    every: Steps
    patience: Steps | None = None


class TrainConfig:
    """How to train: AdamW (no weight decay on norms and biases), linear warm-up then cosine decay,
    gradient clipping, exact accumulation (``accumulation`` micro-batches of ``data.batch_size`` are
    one step on their whole batch: see :mod:`flava_kit.train.accumulation`), a checkpoint every ``checkpoint_every`` steps (the last
    ``keep_checkpoints`` kept), metrics to ``loggers`` every step (losses) and every ``log_every``
    steps (gradient norm, throughput, data-wait and compute time, memory).

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; under ``torchrun`` each rank
    takes the GPU of its local rank, and the process group is NCCL on CUDA, gloo on the CPU.
    ``precision``: ``fp32``, ``bf16`` or ``fp16`` autocast on the run's device (fp16 with a gradient
    scaler); the codebook's targets stay fp32. ``compile`` runs the model through
    ``torch.compile`` (off by default: slower on this project's CPU). ``init_from`` (a run directory
    or checkpoint) starts from its weights where names and shapes match, e.g. a classifier from a
    pretraining run. Under ``torchrun`` the model is replicated (DDP), or sharded with ``fsdp``
    (FSDP2; checkpoints stay whole). ``loggers`` defaults to ``{csv: {type: csv}}``.
    ``record_keys`` writes the keys of every step's items to ``samples/rank-R.jsonl``. ``eval`` is
    the eval recipe (a shipped name such as ``eval_shapes``, a path, or an inline mapping with
    ``tasks``) the finished run is evaluated with, by the same runner as ``flava-kit eval RUN``:
    its table is ``results.json``; null evaluates nothing.

    Fine-tuning controls (see :mod:`flava_kit.train.param_groups`; patterns are fnmatch patterns on
    ``model.named_parameters()`` names, a module path standing for everything below it, and each
    must match something, which ``flava-kit validate`` checks): ``freeze`` lists what does not
    train (no gradient, no optimizer state, unchanged to the bit); ``lr_multipliers`` maps a
    pattern to a factor of ``lr`` (the last matching pattern wins); ``layer_decay`` in (0, 1]
    scales each encoder layer's rate by ``layer_decay ** (top - layer)``, as timm's
    ``param_groups_layer_decay``; ``lora`` (:class:`~flava_kit.models.lora.LoraSettings`, the
    ``lora`` extra) trains low-rank adapters instead of the base weights, merged into them when the
    run is read back or exported. They apply after ``init_from``'s weights are loaded.
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """``activation_checkpointing`` must reach every encoder and fusion: each must have ``set_gradient_checkpointing``
        (see the encoder and fusion contracts), never be skipped silently. Every ``freeze``, ``lr_multipliers`` and
        ``lora`` pattern must match something in the model (:func:`~flava_kit.train.param_groups.pattern_problems`).
        (The eval recipes ``eval`` and ``select.eval`` name are checked whole, their tasks built, by
        :func:`flava_kit.recipe.load_recipe`.)"""
        from flava_kit.train.param_groups import pattern_problems

        if node.get("activation_checkpointing"):
            from flava_kit.registry import registry

            model = recipe.get("model", {})
            for slot, kind in (("image_encoder", "encoder"), ("text_encoder", "encoder"), ("fusion", "fusion")):
                part = model.get(slot)
                if isinstance(part, dict) and not hasattr(registry.get(kind, part["type"]), "set_gradient_checkpointing"):
                    yield (path + ("activation_checkpointing",), f"model.{slot} ({kind} '{part['type']}') cannot checkpoint its activations",
                           "set train.activation_checkpointing=false, or use a component with set_gradient_checkpointing")  # fmt: skip
        yield from pattern_problems(node, path, recipe)

    def __init__(
        self,
        steps: Steps = 1000,
        *,
        lr: Annotated[float, Field(ge=0.0)] = 5e-4,
        weight_decay: Annotated[float, Field(ge=0.0)] = 0.05,
        warmup_steps: Annotated[int, Field(ge=0)] = 100,
        betas: tuple[Probability, Probability] = (0.9, 0.98),
        grad_clip: Annotated[float, Field(ge=0.0)] = 1.0,
        accumulation: Steps = 1,
        log_every: Steps = 10,
        checkpoint_every: Steps = 500,
        keep_checkpoints: Steps = 2,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        precision: Literal["fp32", "bf16", "fp16"] = "fp32",
        compile: bool = False,
        activation_checkpointing: bool = False,
        threads: Steps | None = None,
        init_from: str | None = None,
        fsdp: bool = False,
        record_keys: bool = False,
        loggers: dict[str, MetricLogger] | None = None,
        eval: str | dict | None = None,
        select: ModelSelection | None = None,
        freeze: list[str] | None = None,
        lr_multipliers: dict[str, Annotated[float, Field(ge=0.0)]] | None = None,
        layer_decay: Annotated[float, Field(gt=0.0, le=1.0)] | None = None,
        lora: LoraSettings | None = None,
    ):
        self.steps, self.lr, self.weight_decay, self.warmup_steps, self.betas = steps, lr, weight_decay, warmup_steps, tuple(betas)
        self.grad_clip, self.accumulation, self.log_every = grad_clip, accumulation, log_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.device, self.precision, self.compile = device, precision, compile
        self.activation_checkpointing, self.threads = activation_checkpointing, threads
        self.init_from, self.fsdp, self.record_keys = init_from, fsdp, record_keys
        if loggers is None:
            from flava_kit.train.loggers import CsvLogger

            loggers = {"csv": CsvLogger()}
        self.loggers, self.eval, self.select = loggers, eval, select
        self.freeze, self.lr_multipliers, self.layer_decay = list(freeze or []), dict(lr_multipliers or {}), layer_decay
        self.lora = settings_of(lora) if lora is not None else None  # a mapping, when made by hand
