"""Input checks that name the argument and the expected shape, instead of failing deep inside."""

from __future__ import annotations

import torch

from flava_kit.errors import ShapeError


def check_tensor(name: str, value: object, shape: str, ndim: int | tuple[int, ...], *, floating: bool | None = None) -> torch.Tensor:
    """Raise :class:`ShapeError` unless ``value`` is a tensor of ``ndim`` dims and the right dtype kind.

    ``shape`` is the documented shape (``"[B, 3, H, W]"``) quoted in the message.
    """
    if not isinstance(value, torch.Tensor):
        raise ShapeError(f"{name}: expected a tensor of shape {shape}, got {type(value).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if value.dim() not in dims:
        raise ShapeError(f"{name}: expected shape {shape}, got {tuple(value.shape)}")
    if floating is True and not value.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor of shape {shape}, got dtype {value.dtype}")
    if floating is False and value.is_floating_point():
        raise ShapeError(f"{name}: expected an integer or bool tensor of shape {shape}, got dtype {value.dtype}")
    return value


def check_size(name: str, value: torch.Tensor, dim: int, expected: int, shape: str) -> None:
    """Raise :class:`ShapeError` unless ``value.shape[dim] == expected``."""
    if value.shape[dim] != expected:
        raise ShapeError(f"{name}: expected shape {shape} with size {expected} at dim {dim}, got {tuple(value.shape)}")
