"""The ``data:`` and ``train:`` sections of a recipe: their constructor signatures are their schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from flava_kit.constraints import Probability, Size, Steps
from flava_kit.contracts import ImageMasking, MetricLogger, TextMasking


class DataConfig:
    """Where pretraining batches come from, and how they are processed and masked.

    ``task: classify`` makes labelled batches for fine-tuning a classifier instead (items need a
    ``label``: the synthetic dataset's one-shape images, or a manifest's ``label`` field).

    Sources (any mix; each batch comes from one, drawn by ``weights``, default equal):
    ``synthetic`` pairs of the embedded shapes dataset, a ``manifest`` of image-text pairs
    (JSONL or CSV), an ``image_folder`` (image-only batches: MIM), ``text_lines`` (text-only: MLM),
    a ``labelled_folder`` (one subfolder per class: labelled images, for an image classifier).
    ``tokenizer`` is a local tokenizer directory; without one, a tokenizer is built from the
    synthetic dataset's vocabulary. Broken items are skipped with a warning unless ``strict``.
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """Texts must fit the text encoder's position embeddings (see :data:`flava_kit.contracts.RecipeChecks`)."""
        text = recipe.get("model", {}).get("text_encoder") or {}
        limit = text.get("max_position_embeddings")
        if isinstance(limit, int) and node["text_length"] > limit:
            yield (path + ("text_length",), f"{node['text_length']} tokens exceed model.text_encoder.max_position_embeddings {limit}",
                   f"set data.text_length to {limit} or less")  # fmt: skip

    def __init__(
        self,
        image_masking: ImageMasking | None = None,
        text_masking: TextMasking | None = None,
        *,
        task: Literal["pretrain", "classify"] = "pretrain",
        synthetic: Annotated[int, Field(ge=0)] = 0,
        synthetic_held_out: Annotated[int, Field(ge=0)] = 600,
        manifest: str | None = None,
        image_folder: str | None = None,
        labelled_folder: str | None = None,
        text_lines: str | None = None,
        weights: dict[str, float] | None = None,
        tokenizer: str | None = None,
        batch_size: Steps = 32,
        text_length: Size = 16,
        image_size: Size = 224,
        codebook_size: Size = 112,
        itm_negative_prob: Probability = 0.1,
        workers: Annotated[int, Field(ge=0, le=256)] = 0,
        strict: bool = False,
        seed: int = 0,
    ):
        self.image_masking, self.text_masking, self.task = image_masking, text_masking, task
        if task == "pretrain" and (image_masking is None or text_masking is None):
            raise ValueError("pretraining needs image_masking and text_masking (e.g. {type: block} and {type: mlm})")
        self.synthetic, self.synthetic_held_out = synthetic, synthetic_held_out
        self.manifest, self.image_folder, self.text_lines = manifest, image_folder, text_lines
        self.labelled_folder = labelled_folder
        self.weights, self.tokenizer_path = dict(weights or {}), tokenizer
        self.batch_size, self.text_length, self.image_size, self.codebook_size = batch_size, text_length, image_size, codebook_size
        self.itm_negative_prob, self.workers, self.strict, self.seed = itm_negative_prob, workers, strict, seed
        if not (synthetic or manifest or image_folder or text_lines or labelled_folder):
            raise ValueError("no data: set synthetic (a number of pairs), manifest, image_folder, labelled_folder or text_lines")
        unknown = set(self.weights) - {"synthetic", "manifest", "image_folder", "labelled_folder", "text_lines"}
        if unknown:
            raise ValueError(f"weights: unknown sources {sorted(unknown)}; sources are synthetic, manifest, image_folder, labelled_folder, text_lines")

    def sources(self) -> dict[str, Any]:
        """The configured sources by name."""
        from flava_kit.data.sources import ImageFolder, ImageTextManifest, LabelledImageFolder, TextLines
        from flava_kit.data.synthetic import SyntheticShapes

        sources: dict[str, Any] = {}
        if self.synthetic:  # classification needs labels: one shape per image
            two_shapes = 0.0 if self.task == "classify" else 0.25
            sources["synthetic"] = SyntheticShapes(self.synthetic, self.image_size, seed=self.seed, two_shapes=two_shapes)
        if self.manifest:
            sources["manifest"] = ImageTextManifest(self.manifest)
        if self.image_folder:
            sources["image_folder"] = ImageFolder(self.image_folder)
        if self.labelled_folder:
            sources["labelled_folder"] = LabelledImageFolder(self.labelled_folder)
        if self.text_lines:
            sources["text_lines"] = TextLines(self.text_lines)
        return sources

    def held_out(self) -> Any | None:
        """A held-out synthetic set (another seed) for zero-shot evaluation, when training on synthetic data."""
        from flava_kit.data.synthetic import SyntheticShapes

        if not (self.synthetic and self.synthetic_held_out):
            return None
        return SyntheticShapes(self.synthetic_held_out, self.image_size, seed=self.seed + 10_007, two_shapes=0.0)

    def tokenizer(self, directory: str | Path | None) -> Any:
        """The local tokenizer, or one built from the synthetic vocabulary (saved in ``directory`` if given)."""
        from flava_kit.data.synthetic import vocabulary
        from flava_kit.data.tokenizer import load_tokenizer, tokenizer_from_words

        if self.tokenizer_path:
            return load_tokenizer(self.tokenizer_path)
        return tokenizer_from_words(vocabulary(), directory)

    def processor(self) -> Any:
        from flava_kit.data.processor import ImageProcessor

        return ImageProcessor(self.image_size, self.codebook_size)

    def batches(self, tokenizer: Any, rank: int = 0, length: int = 10**9) -> Any:
        """The run's batches, indexed by step (see :class:`~flava_kit.data.batches.PretrainingBatches`)."""
        from flava_kit.data.batches import PretrainingBatches

        return PretrainingBatches(
            self.sources(), self.weights, batch_size=self.batch_size, processor=self.processor(), tokenizer=tokenizer,
            text_length=self.text_length, image_masking=self.image_masking, text_masking=self.text_masking,
            itm_negative_prob=self.itm_negative_prob, seed=self.seed, rank=rank, length=length, strict=self.strict, task=self.task,
        )  # fmt: skip


class TrainConfig:
    """How to train: AdamW (no weight decay on norms and biases), linear warm-up then cosine decay,
    gradient clipping and accumulation, a checkpoint every ``checkpoint_every`` steps (the last
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
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """``activation_checkpointing`` must reach every encoder and fusion: each must have
        ``set_gradient_checkpointing`` (see the encoder and fusion contracts), never be skipped silently."""
        if not node.get("activation_checkpointing"):
            return
        from flava_kit.registry import registry

        model = recipe.get("model", {})
        for slot, kind in (("image_encoder", "encoder"), ("text_encoder", "encoder"), ("fusion", "fusion")):
            part = model.get(slot)
            if isinstance(part, dict) and not hasattr(registry.get(kind, part["type"]), "set_gradient_checkpointing"):
                yield (path + ("activation_checkpointing",), f"model.{slot} ({kind} '{part['type']}') cannot checkpoint its activations",
                       "set train.activation_checkpointing=false, or use a component with set_gradient_checkpointing")  # fmt: skip

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
        loggers: dict[str, MetricLogger] | None = None,
    ):
        self.steps, self.lr, self.weight_decay, self.warmup_steps, self.betas = steps, lr, weight_decay, warmup_steps, tuple(betas)
        self.grad_clip, self.accumulation, self.log_every = grad_clip, accumulation, log_every
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.device, self.precision, self.compile = device, precision, compile
        self.activation_checkpointing, self.threads = activation_checkpointing, threads
        self.init_from, self.fsdp = init_from, fsdp
        if loggers is None:
            from flava_kit.train.loggers import CsvLogger

            loggers = {"csv": CsvLogger()}
        self.loggers = loggers
