"""Which device a setting (``auto``, ``cpu``, ``cuda``) means here: used by training and evaluation alike."""

from __future__ import annotations

import os

import torch

from flava_kit.errors import FlavaKitError


def resolve_device(setting: str, where: str = "train.device") -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``; a CUDA run takes its local rank's GPU.

    Asking for ``cuda`` where PyTorch sees no GPU is an error that says so.
    """
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise FlavaKitError(
            f"{where} is 'cuda', but PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False"
            f"{'; this torch build has no CUDA' if torch.version.cuda is None else ''}): "
            f"set {where}=cpu, or {where}=auto to use a GPU only where there is one"
        )
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device
