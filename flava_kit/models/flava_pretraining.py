"""FLAVA pretraining: the FLAVA assembly, a codebook for image targets, and any set of objectives."""

from __future__ import annotations

import math

import torch
from torch import nn

from flava_kit.constraints import Size
from flava_kit.contracts import Codebook, Fusion, ImageEncoder, Objective, TextEncoder
from flava_kit.losses import GlobalContrastiveLoss, ITMLoss
from flava_kit.losses.context import NEEDS, PretrainingContext
from flava_kit.losses.masked_prediction import (
    MaskedImageModeling,
    MaskedLanguageModeling,
    MaskedMultimodalImageModeling,
    MaskedMultimodalTextModeling,
)
from flava_kit.models.flava import FlavaModel
from flava_kit.outputs import LossOutput, PretrainingOutput
from flava_kit.registry import register


@register("model", "flava_pretraining")
class FlavaForPreTraining(nn.Module):
    """FLAVA with pretraining objectives (HF ``FlavaForPreTraining``), every part injected.

    ``objectives`` maps names of your choosing to objectives (registry kind ``loss``); left out, it
    is FLAVA's six with FLAVA's defaults, sized to the encoders, fusion and codebook: ``mim``
    (image-only batches), ``mlm`` (text-only), and on paired batches ``itm``,
    ``global_contrastive``, ``mmm_image`` and ``mmm_text``. Each objective decides from the
    :class:`~flava_kit.losses.context.PretrainingContext` whether a batch applies to it; the loss is
    the sum of the (already weighted) losses that ran. The model runs only what some objective
    ``needs``: the codebook, the fusion, the unmasked encoder pass. Pairs with ITM label 0 are left
    out of the objectives that score true pairs. Unlike HF, an objective with nothing masked
    contributes zero, not NaN.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: Fusion,
        codebook: Codebook | None = None,
        objectives: dict[str, Objective] | None = None,
        projection_dim: Size = 768,
        logit_scale_init: float = math.log(1 / 0.07),
        ignore_index: int = -100,
    ):
        super().__init__()
        self.flava = FlavaModel(image_encoder, text_encoder, fusion, projection_dim, logit_scale_init)
        self.codebook = codebook
        explicit = objectives is not None
        if objectives is None:
            objectives = self.default_objectives(image_encoder, text_encoder, fusion, codebook, ignore_index)
        if not objectives:
            raise ValueError("objectives: at least one objective is needed")
        self.objectives = nn.ModuleDict(objectives)
        self.ignore_index = ignore_index
        self.needs = frozenset().union(*(getattr(o, "needs", frozenset()) for o in objectives.values()))
        unknown = sorted(self.needs - NEEDS)
        if unknown:
            raise ValueError(f"objectives need {unknown}, which no model provides; needs are {sorted(NEEDS)}")
        if explicit and codebook is None:
            wanting = [name for name, o in objectives.items() if "image_targets" in getattr(o, "needs", ())]
            if wanting:
                raise ValueError(f"model.objectives.{wanting[0]} needs codebook targets, but model.codebook is not set: "
                                 f"configure a codebook, or use a codebook-free objective such as pixel_mim")  # fmt: skip
        self._check_fit(image_encoder, text_encoder, fusion, codebook)
        self.image_patch_size = image_encoder.image_size // image_encoder.grid_size[0]

    @property
    def loss_names(self) -> list[str]:
        """The names its ``losses`` can hold: the objectives', as the recipe named them."""
        return list(self.objectives)

    @staticmethod
    def default_objectives(image_encoder, text_encoder, fusion, codebook, ignore_index: int = -100) -> dict[str, nn.Module]:
        """FLAVA's six objectives, with heads as wide as the states they read."""
        image_vocab = codebook.vocab_size if codebook is not None else 8192
        return {
            "mim": MaskedImageModeling(image_encoder.hidden_size, image_vocab, ignore_index=ignore_index),
            "mlm": MaskedLanguageModeling(text_encoder.hidden_size, text_encoder.vocab_size, ignore_index=ignore_index),
            "itm": ITMLoss(fusion.hidden_size),
            "global_contrastive": GlobalContrastiveLoss(),
            "mmm_image": MaskedMultimodalImageModeling(fusion.hidden_size, image_vocab, ignore_index=ignore_index),
            "mmm_text": MaskedMultimodalTextModeling(fusion.hidden_size, text_encoder.vocab_size, ignore_index=ignore_index),
        }

    def _check_fit(self, image_encoder, text_encoder, fusion, codebook) -> None:
        """Widths and vocabularies that must agree between parts; errors name both sides."""
        problems = []
        if codebook is not None and tuple(codebook.grid_size) != tuple(image_encoder.grid_size):
            problems.append(f"codebook grid {tuple(codebook.grid_size)} != image_encoder grid {tuple(image_encoder.grid_size)}: "
                            f"MIM needs one target per patch")  # fmt: skip
        parts = {"image_encoder": image_encoder, "text_encoder": text_encoder, "fusion": fusion, "codebook": codebook}
        for name, objective in self.objectives.items():
            fit = getattr(objective, "fit", None)
            problems += [f"objectives.{name}.{problem}" for problem in (fit(parts) if fit else ())]
            if getattr(objective, "ignore_index", self.ignore_index) != self.ignore_index:
                problems.append(f"objectives.{name}.ignore_index {objective.ignore_index} != ignore_index {self.ignore_index}")
        if problems:
            raise ValueError("parts do not fit: " + "; ".join(problems))

    def example_inputs(self, batch_size: int = 2, text_length: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
        """A seeded paired batch with masks and labels, one ITM negative (the last row)."""
        generator = torch.Generator().manual_seed(seed)
        inputs = self.flava.example_inputs(batch_size, text_length, seed)
        patches = self.flava.image_encoder.grid_size[0] * self.flava.image_encoder.grid_size[1]
        inputs["bool_masked_pos"] = torch.rand(batch_size, patches, generator=generator) < 0.4
        selected = (torch.rand(batch_size, text_length, generator=generator) < 0.15) & inputs["attention_mask"].bool()
        inputs["mlm_labels"] = torch.where(selected, inputs["input_ids"], self.ignore_index)
        inputs["input_ids_masked"] = torch.where(selected, 103 % self.flava.text_encoder.vocab_size, inputs["input_ids"])
        if self.codebook is not None:
            size = self.codebook.input_size
            inputs["codebook_pixel_values"] = torch.rand(batch_size, 3, size, size, generator=generator) * 0.8 + 0.1
        inputs["itm_labels"] = torch.ones(batch_size, dtype=torch.long)
        inputs["itm_labels"][-1] = 0 if batch_size > 1 else 1
        return inputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        input_ids_masked: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        codebook_pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        mim_labels: torch.Tensor | None = None,
        itm_labels: torch.Tensor | None = None,
        defer_batch_level: bool = False,
    ) -> PretrainingOutput:
        """HF ``FlavaForPreTraining``'s arguments; returns the losses of the objectives that ran.
        With ``defer_batch_level``, batch-level objectives leave their ``rows`` unscored (see
        :class:`~flava_kit.outputs.PretrainingOutput` and :meth:`score_batch_level`)."""
        given = dict(input_ids=input_ids, input_ids_masked=input_ids_masked, pixel_values=pixel_values,
                     codebook_pixel_values=codebook_pixel_values, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     bool_masked_pos=bool_masked_pos, mlm_labels=mlm_labels, mim_labels=mim_labels, itm_labels=itm_labels)  # fmt: skip
        context = self.context({k: v for k, v in given.items() if v is not None})
        out = PretrainingOutput(masked=context.masked, unmasked=context.unmasked)
        for name, objective in self.objectives.items():
            if defer_batch_level and hasattr(objective, "batch_rows"):
                rows = objective.batch_rows(context)
                if rows is not None:
                    out.rows[name] = rows
                continue
            result = objective(context)
            if result is None:  # the batch does not apply to it
                continue
            out.losses[name], out.logits[name], out.terms[name] = result.loss, result.logits, result.terms
            out.metrics.update({f"{name}/{metric}": value for metric, value in result.metrics.items()})
        if out.losses:
            out.loss = sum(out.losses.values())
        return out

    def score_batch_level(self, rows: dict[str, dict[str, torch.Tensor]]) -> dict[str, LossOutput]:
        """The batch-level objectives' losses over ``rows`` (objective name -> its rows, e.g. every
        micro-batch's concatenated), as one batch of them would score."""
        return {name: self.objectives[name].batch_loss(named, self.flava.logit_scale) for name, named in rows.items()}

    def context(self, inputs: dict[str, torch.Tensor]) -> PretrainingContext:
        """Run what the objectives need on a batch and hand it over as one :class:`PretrainingContext`."""
        has_image, has_text = "pixel_values" in inputs, "input_ids" in inputs or "input_ids_masked" in inputs
        paired = has_image and has_text
        text_in = inputs.get("input_ids_masked", inputs.get("input_ids"))
        masked = self.flava(inputs.get("pixel_values"), text_in, inputs.get("attention_mask"), inputs.get("token_type_ids"),
                            inputs.get("bool_masked_pos"), skip_multimodal_encoder=not (paired and "fusion" in self.needs))  # fmt: skip
        context = PretrainingContext(inputs, masked, self.flava.logit_scale, self.ignore_index, self.image_patch_size)
        if masked.multimodal_embeddings is not None:
            context.layout = self.flava.fusion.layout(masked.image_embeddings.shape[1], masked.text_embeddings.shape[1])
        if has_image and "image_targets" in self.needs:
            context.image_targets = self._image_targets(inputs.get("mim_labels"), inputs.get("codebook_pixel_values"), inputs.get("bool_masked_pos"))
        if paired and "itm_labels" in inputs:
            positive = inputs["itm_labels"] != 0
            context.itm_keep = positive | ~positive.any()  # no positive pair at all: HF keeps every row
        if paired and "unmasked" in self.needs:
            context.unmasked = masked
            if "bool_masked_pos" in inputs or ("input_ids_masked" in inputs and "input_ids" in inputs):
                # Contrast unmasked inputs: encode them again, without fusing.
                context.unmasked = self.flava(inputs["pixel_values"], inputs.get("input_ids", text_in), inputs.get("attention_mask"),
                                              inputs.get("token_type_ids"), skip_multimodal_encoder=True)  # fmt: skip
        return context

    def _image_targets(self, mim_labels, codebook_pixel_values, bool_masked_pos) -> torch.Tensor | None:
        """Codebook ids at masked patches, ``ignore_index`` elsewhere (the caller's labels are not modified)."""
        if bool_masked_pos is None:
            return None
        if mim_labels is None:
            if codebook_pixel_values is None or self.codebook is None:
                return None
            with torch.autocast(codebook_pixel_values.device.type, enabled=False):  # targets do not change with precision
                mim_labels = self.codebook.tokens(codebook_pixel_values.float())
        mim_labels = mim_labels.reshape(mim_labels.shape[0], -1)
        masked = bool_masked_pos.reshape(bool_masked_pos.shape[0], -1).bool()
        return mim_labels.masked_fill(~masked, self.ignore_index)
