"""Images -> FLAVA's pixel inputs, exactly as HF's ``FlavaImageProcessor`` makes them.

Both use torchvision's resize (bicubic, antialiased; Lanczos for codebook pixels), centre crop,
rescale by 1/255 and normalise; codebook pixels are mapped into [0.1, 0.9] as DALL-E expects.
Training augmentation (a random resized crop, a horizontal flip) is off unless asked for, so the
default keeps HF's numbers; when on, the codebook sees the same crop as the model, as in FLAVA.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop  # v1: its get_params is public
from torchvision.transforms.v2 import functional as tvF

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LOGIT_LAPLACE_EPS = 0.1


class ImageProcessor:
    """``PIL.Image`` (or uint8 ``[3, H, W]`` tensors) -> ``pixel_values`` and ``codebook_pixel_values``."""

    def __init__(
        self,
        image_size: int = 224,
        codebook_size: int | None = 112,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        crop_scale: tuple[float, float] | None = None,
        flip: bool = False,
    ):
        self.image_size, self.codebook_size = image_size, codebook_size
        self.mean, self.std = list(mean), list(std)
        self.crop_scale, self.flip = crop_scale, flip

    @staticmethod
    def _to_uint8(image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, Image.Image):
            return tvF.pil_to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected a PIL image or a uint8 tensor [3, H, W], got {image.dtype} {tuple(image.shape)}")
        return image

    def _resized(self, image: torch.Tensor, size: int, interpolation: tvF.InterpolationMode) -> torch.Tensor:
        return tvF.center_crop(tvF.resize(image, [size, size], interpolation, antialias=True), [size, size])

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[..., 3, S, S]`` -> float32: HF fuses rescale and normalise, (x - 255 mean) / (255 std)."""
        shape = (3, 1, 1)
        mean, std = torch.tensor([255 * m for m in self.mean]).view(shape), torch.tensor([255 * s for s in self.std]).view(shape)
        return x.float().sub_(mean).div_(std)  # torchvision's normalize, once for a whole batch

    @staticmethod
    def _mapped(x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 in [0.1, 0.9] (DALL-E's ``map_pixels``)."""
        return (1 - 2 * LOGIT_LAPLACE_EPS) * (x.float() * (1 / 255)) + LOGIT_LAPLACE_EPS

    def pixels(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """``[3, image_size, image_size]`` float32, normalised with CLIP's mean and std."""
        return self._normalised(self._resized(self._to_uint8(image), self.image_size, tvF.InterpolationMode.BICUBIC))

    def codebook_pixels(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """``[3, codebook_size, codebook_size]`` float32 in [0.1, 0.9] (DALL-E's ``map_pixels``)."""
        return self._mapped(self._resized(self._to_uint8(image), self.codebook_size, tvF.InterpolationMode.LANCZOS))

    def augment(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random resized crop (area in ``crop_scale``, aspect 3/4 .. 4/3, as torchvision's) and
        a horizontal flip with probability 1/2, drawn from ``generator``; the crop keeps its size."""
        if self.crop_scale is not None:
            with torch.random.fork_rng(devices=[]):  # torchvision draws from the global RNG: seed it from ours
                torch.manual_seed(int(torch.randint(1 << 62, (1,), generator=generator)))
                top, left, height, width = RandomResizedCrop.get_params(image, list(self.crop_scale), [3 / 4, 4 / 3])
            image = tvF.crop(image, top, left, height, width)
        if self.flip and bool(torch.rand(1, generator=generator) < 0.5):
            image = tvF.horizontal_flip(image)
        return image

    def __call__(self, images: Sequence[Image.Image | torch.Tensor], codebook: bool = True,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """A batch: ``pixel_values`` ``[B, 3, S, S]`` and, with ``codebook`` (and a ``codebook_size``:
        None for models without a codebook), ``codebook_pixel_values``.

        With a ``generator`` (training batches) and augmentation configured, each image is first
        cropped and flipped once; both views are made from that one crop.
        """
        images = [self._to_uint8(image) for image in images]
        if generator is not None and (self.crop_scale is not None or self.flip):
            images = [self.augment(image, generator) for image in images]
        # Resized one by one (sizes differ), converted to float once per batch (a quarter of the memory traffic).
        resized = [self._resized(image, self.image_size, tvF.InterpolationMode.BICUBIC) for image in images]
        out = {"pixel_values": self._normalised(torch.stack(resized))}
        if codebook and self.codebook_size is not None:
            resized = [self._resized(image, self.codebook_size, tvF.InterpolationMode.LANCZOS) for image in images]
            out["codebook_pixel_values"] = self._mapped(torch.stack(resized))
        return out
