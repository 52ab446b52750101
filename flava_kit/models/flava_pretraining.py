"""FLAVA pretraining: the FLAVA assembly, a codebook for image targets, and six objectives."""

from __future__ import annotations

import math

import torch
from torch import nn

from flava_kit.constraints import Size
from flava_kit.contracts import Codebook, Fusion, ImageEncoder, Objective, TextEncoder
from flava_kit.losses import GlobalContrastiveLoss, ITMLoss, MaskedPredictionLoss
from flava_kit.models.flava import FlavaModel
from flava_kit.outputs import PretrainingOutput
from flava_kit.registry import register

OBJECTIVES = ("mim", "mlm", "itm", "global_contrastive", "mmm_image", "mmm_text")


@register("model", "flava_pretraining")
class FlavaForPreTraining(nn.Module):
    """FLAVA with its pretraining objectives (HF ``FlavaForPreTraining``), every part injected.

    Which objectives run depends on the batch, as in HF: image-only batches run ``mim``,
    text-only batches ``mlm``, paired batches ``itm``, ``global_contrastive``, ``mmm_image`` and
    ``mmm_text``. Pairs with ITM label 0 are left out of the contrastive and MMM objectives.
    ``objectives`` maps those names to loss components; left out, all six are built with FLAVA's
    defaults sized to the encoders, fusion and codebook. An objective missing from the mapping
    does not run. Unlike HF, a batch runs the unmasked encoders only when the contrastive loss
    needs them, and an objective with nothing masked contributes zero, not NaN.
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
        if objectives is None:
            objectives = self.default_objectives(image_encoder, text_encoder, fusion, codebook, ignore_index)
        unknown = sorted(set(objectives) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"objectives: unknown {unknown}; FlavaForPreTraining runs {', '.join(OBJECTIVES)}")
        self.objectives = nn.ModuleDict(objectives)
        self.ignore_index = ignore_index
        self._check_fit(image_encoder, text_encoder, fusion, codebook)

    @staticmethod
    def default_objectives(image_encoder, text_encoder, fusion, codebook, ignore_index: int = -100) -> dict[str, nn.Module]:
        """FLAVA's six objectives, with heads as wide as the states they read."""
        image_vocab = codebook.vocab_size if codebook is not None else 8192
        return {
            "mim": MaskedPredictionLoss(image_encoder.hidden_size, image_vocab, ignore_index=ignore_index),
            "mlm": MaskedPredictionLoss(text_encoder.hidden_size, text_encoder.vocab_size, ignore_index=ignore_index),
            "itm": ITMLoss(fusion.hidden_size),
            "global_contrastive": GlobalContrastiveLoss(),
            "mmm_image": MaskedPredictionLoss(fusion.hidden_size, image_vocab, ignore_index=ignore_index),
            "mmm_text": MaskedPredictionLoss(fusion.hidden_size, text_encoder.vocab_size, ignore_index=ignore_index),
        }

    def _check_fit(self, image_encoder, text_encoder, fusion, codebook) -> None:
        """Widths and vocabularies that must agree between parts; errors name both sides."""
        problems = []
        if codebook is not None and tuple(codebook.grid_size) != tuple(image_encoder.grid_size):
            problems.append(f"codebook grid {tuple(codebook.grid_size)} != image_encoder grid {tuple(image_encoder.grid_size)}: "
                            f"MIM needs one target per patch")  # fmt: skip
        expected = {  # objective -> (reads states of, width, vocabulary from, vocabulary)
            "mim": ("image_encoder", image_encoder.hidden_size, "codebook", codebook.vocab_size if codebook is not None else None),
            "mlm": ("text_encoder", text_encoder.hidden_size, "text_encoder", text_encoder.vocab_size),
            "mmm_image": ("fusion", fusion.hidden_size, "codebook", codebook.vocab_size if codebook is not None else None),
            "mmm_text": ("fusion", fusion.hidden_size, "text_encoder", text_encoder.vocab_size),
            "itm": ("fusion", fusion.hidden_size, None, None),
        }
        for name, (source, width, vocab_source, vocab) in expected.items():
            objective = self.objectives[name] if name in self.objectives else None
            if objective is None:
                continue
            if getattr(objective, "hidden_size", width) != width:
                problems.append(f"objectives.{name}.hidden_size {objective.hidden_size} != {source}.hidden_size {width}")
            if vocab is not None and getattr(objective, "vocab_size", vocab) != vocab:
                problems.append(f"objectives.{name}.vocab_size {objective.vocab_size} != {vocab_source}.vocab_size {vocab}")
        for name, objective in self.objectives.items():
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
    ) -> PretrainingOutput:
        """HF ``FlavaForPreTraining``'s arguments; returns the losses of the objectives that ran."""
        out = PretrainingOutput()
        has_image = pixel_values is not None
        has_text = input_ids is not None or input_ids_masked is not None
        image_targets = self._image_targets(mim_labels, codebook_pixel_values, bool_masked_pos)
        text_in = input_ids_masked if input_ids_masked is not None else input_ids
        masked = self.flava(pixel_values, text_in, attention_mask, token_type_ids, bool_masked_pos)
        out.masked = masked
        run = self.objectives
        if has_image and not has_text and "mim" in run and image_targets is not None:
            self._record(out, "mim", run["mim"](masked.image_embeddings[:, 1:], image_targets))
        if has_text and not has_image and "mlm" in run and mlm_labels is not None:
            self._record(out, "mlm", run["mlm"](masked.text_embeddings, mlm_labels))
        if has_image and has_text:
            keep = None
            if "itm" in run and itm_labels is not None:
                self._record(out, "itm", run["itm"](masked.multimodal_embeddings, itm_labels))
                positive = itm_labels != 0
                keep = positive | ~positive.any()  # no positive pair at all: HF keeps every row
            fused = masked.multimodal_embeddings if keep is None else masked.multimodal_embeddings[keep]
            if "mmm_image" in run and image_targets is not None:
                patches = masked.image_embeddings.shape[1] - 1  # fused = [CLS_M, image CLS, patches..., text...]
                targets = image_targets if keep is None else image_targets[keep]
                self._record(out, "mmm_image", run["mmm_image"](fused[:, 2 : 2 + patches], targets))
            if "mmm_text" in run and mlm_labels is not None:
                labels = mlm_labels if keep is None else mlm_labels[keep]
                self._record(out, "mmm_text", run["mmm_text"](fused[:, -labels.shape[1] :], labels))
            if "global_contrastive" in run:
                unmasked = masked
                if bool_masked_pos is not None or (input_ids_masked is not None and input_ids is not None):
                    # The contrastive loss compares unmasked inputs: encode them, without fusing.
                    unmasked = self.flava(pixel_values, input_ids if input_ids is not None else input_ids_masked,
                                          attention_mask, token_type_ids, skip_multimodal_encoder=True)  # fmt: skip
                out.unmasked = unmasked
                result = run["global_contrastive"](unmasked.image_features, unmasked.text_features, self.flava.logit_scale, keep)
                out.losses["global_contrastive"] = result.loss
                out.contrastive_logits_per_image, out.contrastive_logits_per_text = result.logits
        if out.losses:
            out.loss = sum(out.losses.values())
        return out

    def _image_targets(self, mim_labels, codebook_pixel_values, bool_masked_pos) -> torch.Tensor | None:
        """Codebook ids at masked patches, ``ignore_index`` elsewhere (the caller's labels are not modified)."""
        if bool_masked_pos is None:
            return None
        if mim_labels is None:
            if codebook_pixel_values is None or self.codebook is None:
                return None
            mim_labels = self.codebook.tokens(codebook_pixel_values)
        mim_labels = mim_labels.reshape(mim_labels.shape[0], -1)
        masked = bool_masked_pos.reshape(bool_masked_pos.shape[0], -1).bool()
        return mim_labels.masked_fill(~masked, self.ignore_index)

    @staticmethod
    def _record(out: PretrainingOutput, name: str, result) -> None:
        out.losses[name] = result.loss
        setattr(out, f"{name}_logits", result.logits)
