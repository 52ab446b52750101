"""FSDP2 sharding of a model over every rank (``train.fsdp``)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def shard(model: torch.nn.Module, precision: str = "fp32") -> list[torch.nn.Parameter]:
    """FSDP (``fully_shard``) over every rank: each transformer layer, the codebook, then the rest.

    Scalar parameters (``logit_scale``) cannot be sharded: they stay replicated and are returned,
    for the caller to average their gradients.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from flava_kit.layers import TransformerLayer
    from flava_kit.layers.cross_attention import CrossAttentionLayer

    mesh = init_device_mesh(next(model.parameters()).device.type, (dist.get_world_size(),))
    units = [m for m in model.modules() if isinstance(m, (TransformerLayer, CrossAttentionLayer))]
    codebook = getattr(model, "codebook", None)
    if isinstance(codebook, torch.nn.Module) and any(True for _ in codebook.parameters()):
        units.append(codebook)  # frozen: a unit of its own, apart from the trained weights
    scalars = [p for p in model.parameters() if p.dim() == 0]
    policy = {}
    if precision != "fp32":  # compute in bf16/fp16, keep fp32 master weights, reduce gradients in fp32
        from torch.distributed.fsdp import MixedPrecisionPolicy

        from flava_kit.train.device import DTYPES

        policy = {"mp_policy": MixedPrecisionPolicy(param_dtype=DTYPES[precision], reduce_dtype=torch.float32)}
    for unit in units:
        fully_shard(unit, mesh=mesh, **policy)
    fully_shard(model, mesh=mesh, ignored_params=set(scalars), **policy)
    return scalars
