"""The contracts between component kinds: what a slot in a recipe accepts.

A constructor parameter annotated with one of these protocols (``image_encoder: ImageEncoder``)
takes a nested recipe node of the protocol's kind; the builder constructs that child first and
checks that what it built has the protocol's members. Containers work too:
``Optional[Loss]``, ``list[Loss]``, ``dict[str, Loss]``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class ImageEncoder(Protocol):
    """``forward(pixel_values, bool_masked_pos=None) -> EncoderOutput``.

    The output's ``last_hidden_state`` is after the final norm, ``hidden_states_for_fusion`` is the
    last layer before it (what FLAVA feeds the multimodal encoder), position 0 is [CLS].
    ``image_size`` is the native (square) input size, ``grid_size`` the patch grid (rows, cols) there.
    Optional: ``set_gradient_checkpointing(enabled)``, which ``train.activation_checkpointing`` needs
    (encoders and fusions alike).
    """

    hidden_size: int
    image_size: int
    grid_size: tuple[int, int]

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> Any: ...


@runtime_checkable
class TextEncoder(Protocol):
    """``forward(input_ids, attention_mask=None, token_type_ids=None) -> EncoderOutput``."""

    hidden_size: int
    vocab_size: int

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> Any: ...


@runtime_checkable
class Fusion(Protocol):
    """``forward(image_states, text_states, text_padding_mask=None) -> EncoderOutput``.

    Inputs are already at the fusion's ``hidden_size``; the output sequence starts with [CLS_M].
    ``text_padding_mask`` is 1 at real tokens and 0 at padding, as HF's ``attention_mask``.
    ``layout(image_length, text_length) -> FusionLayout`` declares where [CLS_M], the image [CLS],
    the image patches and the text tokens sit in the output, for inputs of those lengths (the image
    length counts its [CLS]): objectives read spans by name, never by offset.
    """

    hidden_size: int

    def forward(
        self, image_states: torch.Tensor, text_states: torch.Tensor, text_padding_mask: torch.Tensor | None = None
    ) -> Any: ...

    def layout(self, image_length: int, text_length: int) -> Any: ...


@runtime_checkable
class Codebook(Protocol):
    """``tokens(pixels [B, C, input_size, input_size]) -> LongTensor [B, grid_size[0] * grid_size[1]]``.

    The targets of masked image modelling, computed without autograd.
    """

    vocab_size: int
    grid_size: tuple[int, int]
    input_size: int

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Objective(Protocol):
    """A pretraining objective (registry kind ``loss``): ``forward(context) -> LossOutput | None``.

    ``context`` is a :class:`~flava_kit.losses.context.PretrainingContext`: the batch, the masked
    pass, and what the objective declared in ``needs`` (a set drawn from
    :data:`~flava_kit.losses.context.NEEDS`: ``unmasked``, ``image_targets``, ``fusion``; empty by
    default). The model runs the codebook, the fusion and the unmasked pass only when some
    objective needs them. Return None when the batch does not apply (MLM on a paired batch), else
    a :class:`~flava_kit.outputs.LossOutput` whose ``loss`` is already multiplied by ``weight``;
    its ``metrics`` are logged as ``<name>/<metric>``. Optionally ``fit(parts) -> Iterable[str]``
    names mismatches with the model's ``parts`` (``image_encoder``, ``text_encoder``, ``fusion``,
    ``codebook``), reported at build (and so at validate) time as ``objectives.<name>.<problem>``.

    A loss that is a mean over a varying number of terms (masked tokens) sets ``LossOutput.terms``,
    so gradient accumulation weights micro-batches by it. An objective that compares items across
    the batch (a contrastive loss) is **batch-level**, and declares it by splitting its forward in
    two: ``batch_rows(context) -> dict[str, Tensor] | None`` (its per-row tensors, each ``[B, ...]``:
    features with their graph, masks, ids; None when the batch does not apply) and
    ``batch_loss(rows, logit_scale) -> LossOutput`` (the loss over rows of any number of batches
    concatenated along dim 0; ``logit_scale`` is the model's). ``forward`` must equal
    ``batch_loss(batch_rows(context), context.logit_scale)``. With ``train.accumulation: K`` the
    trainer then scores every micro-batch's rows together, gradient-cached (GradCache), so the loss
    and its gradients are those of one batch of K micro-batches, with no code of the objective's own.
    """

    weight: float

    def forward(self, context: Any) -> Any: ...


@runtime_checkable
class ImageMasking(Protocol):
    """``(batch_size, generator=None) -> BoolTensor [B, N]``, True at patches to mask.

    The patch grid follows the model: :meth:`flava_kit.train.config.DataConfig.follow` calls the
    optional ``follow_grid(grid_size)`` with the image encoder's ``(rows, cols)`` before the first
    batch (the built-ins take it when their ``grid`` is unset and raise ``ValueError`` when a set
    grid differs). A masking without ``follow_grid`` must have ``num_patches`` equal to the model's.
    """

    num_patches: int

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class TextMasking(Protocol):
    """``(input_ids, special_tokens_mask, generator=None) -> (masked_ids, labels)``; labels -100 where not masked.

    A masking with a true ``whole_word`` attribute is also passed ``word_starts=`` (``[B, L]``, True at
    each word's first token, from the tokenizer's word ids).
    """

    def __call__(
        self, input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class MetricLogger(Protocol):
    """Where a run's metrics go (registry kind ``logger``; ``train.loggers`` in a recipe).

    ``start(run_dir, step, columns)`` opens it for a run resuming after ``step`` (0: a new run); a
    logger must forget anything it recorded after ``step``, so a crashed and resumed run shows each
    step once. ``columns`` maps each group (``train``, ``system``) to the metric names the trainer
    expects (more may appear). ``log(step, metrics, group="train")`` records floats; ``close()``
    flushes. Only rank 0 logs.

    Optional: ``record_recipe(recipe)``, called before ``start`` with the resolved recipe (a dict),
    for trackers that keep a run's configuration; ``checkpointed(step)``, called once a checkpoint of
    ``step`` is on disk, after which a resume never logs ``step`` or anything before it again: a
    logger that cannot forget (an experiment tracker's append-only history) holds back later points
    until then.
    """

    def start(self, run_dir: Any, step: int, columns: dict[str, list[str]]) -> None: ...

    def log(self, step: int, metrics: dict[str, float], group: str = "train") -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    """Where training items come from (registry kind ``source``; ``data.sources`` in a recipe).

    An *item* is a dict with a stable ``key`` (str: the same item has the same key in every run)
    and, as the data holds them:

    - ``image``: an RGB PIL image;
    - ``text``: a str (a caption; for VQA, the question);
    - ``captions``: a list of str, every caption of the image (a retrieval set's: COCO's five), the
      first of them also its ``text``; evaluation encodes each (one text feature row a caption);
    - ``text_pair``: a str, the second text of a sentence pair (MNLI's hypothesis);
    - ``label``: an int >= 0, a class index (a source naming its classes has ``class_names``);
      absent, or -1 in the synthetic data's two-shape images, when there is none;
    - ``answers``: a list of str, every annotator's answer to the question, repeats kept (VQAv2's ten).

    An item holds an ``image`` and/or a ``text``. Sources that read named fields (``manifest``,
    ``hf_dataset``, ``webdataset``) map them to these through :mod:`flava_kit.data.sources.fields`.

    A source is read in *lanes*: under ``torchrun`` with ``data.workers`` W, rank r's worker w reads
    lane ``r * W + w`` of ``lanes = world_size * W``. ``samples(lane, lanes, seed, position)``
    yields ``(raw, position)`` pairs forever (epoch after epoch, or resampled), where the lanes of
    one epoch together hold every sample exactly once; ``raw`` is cheap to produce (undecoded
    bytes, an index) and ``position`` (a small JSON-able dict) is where the lane stands after it,
    so that ``samples(..., position)`` continues with exactly the next raw sample: that is what a
    checkpoint stores. ``decode(raw) -> item`` does the expensive part (image decoding) and raises
    :class:`~flava_kit.data.sources.DataError`, naming the file or shard and key, for a broken
    sample; a source may also yield a :class:`~flava_kit.data.sources.Broken` in place of ``raw``
    (an unreadable shard), which counts as one skipped sample. Optional: ``__len__`` (items per
    epoch, when known). ``weight`` is the source's share of batches (each batch comes from one source).
    """

    weight: float

    def samples(self, lane: int, lanes: int, seed: int, position: dict | None = None) -> Any: ...

    def decode(self, raw: Any) -> dict: ...


@runtime_checkable
class Task(Protocol):
    """An evaluation (registry kind ``task``; ``tasks:`` in an eval recipe).

    A task's data are its constructor parameters typed :class:`Source` (``data``, the set it
    reports on; ``train`` for a probe's training set, ...): their names are the task's *roles*, and
    the task keeps each built source as the attribute of that name (the runner reads it there rather
    than opening the data again).
    ``needs() -> dict[role, set of modalities]`` says which features it reads (``"image"``,
    ``"text"``), so the runner computes each (model weights, dataset, modality) once, in one pass
    over the data, caches it on disk and shares it with every task that reads it.
    ``run(inputs) -> TaskResult`` gets a :class:`~flava_kit.evaluation.tasks.base.TaskInputs`
    (the features of each role, the built sources, a text encoder for prompts, the model's kind and,
    for a VQA model, its answer vocabulary, and a scorer of chosen image-text pairs) and returns a
    :class:`~flava_kit.evaluation.tasks.base.TaskResult`: named float metrics (higher is better
    unless listed in ``lower_is_better``), JSON-able details and optional pictures. ``version``
    (an int) changes when the task's numbers would change: it is part of every result written.
    """

    version: int

    def needs(self) -> dict[str, set[str]]: ...

    def run(self, inputs: Any) -> Any: ...


SLOT_KINDS: dict[type, str] = {
    ImageEncoder: "encoder",
    TextEncoder: "encoder",
    Fusion: "fusion",
    Codebook: "codebook",
    Objective: "loss",
    ImageMasking: "masking",
    TextMasking: "masking",
    MetricLogger: "logger",
    Source: "source",
    Task: "task",
}
"""Which registry kind each slot protocol draws its components from."""


def missing_members(obj: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``obj`` lacks (empty when it satisfies the contract)."""
    methods = [m for m in ("forward", "tokens", "__call__", "samples", "decode", "needs", "run") if m in vars(protocol)]
    members = list(getattr(protocol, "__annotations__", {})) + methods
    return [m for m in members if not hasattr(obj, m)]


RecipeChecks = "recipe_checks(node: dict, path: tuple, recipe: dict) -> Iterable[(path, message[, hint])]"
"""The optional cross-component check hook of any component (or of a recipe section's class).

A component that needs its parts, or other sections, to agree with it (a codebook grid that must
match the image encoder's patch grid; a data setting that must match the model) defines a static
method ``recipe_checks(node, path, recipe)``. ``flava-kit validate`` calls it after the whole
recipe is resolved (every default explicit), with the component's own resolved ``node``, its
recipe ``path`` (a tuple of keys) and the whole resolved ``recipe``. It yields one tuple per
problem: the recipe path to blame (a tuple; name the other side in the message), the message, and
optionally a hint. It must not build anything. A check that raises (because a value it reads is
itself invalid and already reported) is skipped.
"""
