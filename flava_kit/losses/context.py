"""What every pretraining objective is handed: one :class:`PretrainingContext` per batch.

The model builds it once: the batch, the masked pass (image, text and multimodal states), and only
what some configured objective :data:`asks for <NEEDS>` — the unmasked encoder pass, the codebook
targets, the fusion. Objectives read the fused sequence by the fusion's declared
:class:`~flava_kit.outputs.FusionLayout` (``context.fused("text")``), never by offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flava_kit.outputs import FlavaOutput, FusionLayout

NEEDS = frozenset({"unmasked", "image_targets", "fusion"})
"""What an objective may declare in ``needs``: the unmasked encoder pass (``unmasked``), codebook
ids at masked patches (``image_targets``), the multimodal encoder on the masked pass (``fusion``)."""


@dataclass
class PretrainingContext:
    """One batch as the objectives see it.

    - ``inputs``: the batch as the model got it (HF ``FlavaForPreTraining``'s argument names:
      ``pixel_values``, ``input_ids``, ``input_ids_masked``, ``attention_mask``, ``bool_masked_pos``,
      ``mlm_labels``, ``itm_labels``, ...); absent keys are missing, not None.
    - ``masked``: the encoders (and the fusion, if needed) on the masked inputs.
    - ``unmasked``: the encoders on the unmasked inputs, when an objective needs them (else None).
    - ``image_targets``: ``[B, N]`` codebook ids at masked patches, ``ignore_index`` elsewhere, when
      an objective needs them and they can be had (a codebook or ``mim_labels``).
    - ``itm_keep``: ``[B]`` True at rows that are true image-text pairs (ITM label 1), the rows
      contrastive and multimodal masked objectives score; None when every row counts.
    - ``logit_scale``: the model's learnable contrastive temperature (log scale).
    - ``layout``: where [CLS_M], the image and the text sit in the fused sequence (None without fusion).
    - ``patch_size``: the image encoder's patch side in pixels.
    """

    inputs: dict[str, torch.Tensor]
    masked: FlavaOutput
    logit_scale: torch.Tensor
    ignore_index: int = -100
    patch_size: int | None = None
    unmasked: FlavaOutput | None = None
    image_targets: torch.Tensor | None = None
    itm_keep: torch.Tensor | None = None
    layout: FusionLayout | None = None

    @property
    def has_image(self) -> bool:
        """The batch has images."""
        return "pixel_values" in self.inputs

    @property
    def has_text(self) -> bool:
        """The batch has text."""
        return "input_ids" in self.inputs or "input_ids_masked" in self.inputs

    @property
    def paired(self) -> bool:
        """The batch has both: image-text pairs."""
        return self.has_image and self.has_text

    def kept(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s rows that are true pairs (all rows when ``itm_keep`` is None)."""
        return tensor if self.itm_keep is None else tensor[self.itm_keep]

    def fused(self, span: str) -> torch.Tensor:
        """The multimodal states of one named span (``cls_m``, ``image_cls``, ``image_patches``,
        ``text``) at the kept rows; the fusion must have run."""
        if self.masked.multimodal_embeddings is None or self.layout is None:
            raise ValueError("no fused sequence in this batch: an objective that reads it must declare needs={'fusion'}")
        where = getattr(self.layout, span)
        if where is None:
            raise ValueError(f"this fusion's layout has no '{span}' span")
        return self.kept(self.masked.multimodal_embeddings)[:, where]

    def features(self, inputs: str = "unmasked") -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised (image, text) features of the ``unmasked`` or ``masked`` pass."""
        source = self.unmasked if inputs == "unmasked" and self.unmasked is not None else self.masked
        return source.image_features, source.text_features
