"""Run under torchrun: each rank scores its half of a batch with the global contrastive loss.

Writes the rank-averaged loss and the DDP-averaged gradients to ``OUT/result.pt`` (rank 0).
"""

import sys

import torch
import torch.distributed as dist

from flava_kit.losses import GlobalContrastiveLoss


def make_problem(seed: int = 0):
    """The same projections and global batch on every rank (and in the single-process reference)."""
    torch.manual_seed(seed)
    image_proj, text_proj = torch.nn.Linear(10, 6), torch.nn.Linear(12, 6)
    logit_scale = torch.nn.Parameter(torch.tensor(2.0))
    images, texts = torch.randn(8, 10), torch.randn(8, 12)
    return image_proj, text_proj, logit_scale, images, texts


def loss_of(image_proj, text_proj, logit_scale, images, texts):
    normalize = torch.nn.functional.normalize
    loss = GlobalContrastiveLoss().train()
    return loss(normalize(image_proj(images), dim=-1), normalize(text_proj(texts), dim=-1), logit_scale).loss


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    image_proj, text_proj, logit_scale, images, texts = make_problem()
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    loss = loss_of(image_proj, text_proj, logit_scale, images[part], texts[part])
    loss.backward()
    params = [*image_proj.parameters(), *text_proj.parameters(), logit_scale]
    for tensor in [loss.detach(), *(p.grad for p in params)]:
        dist.all_reduce(tensor)  # what DDP does with gradients: sum, then divide by the world size
        tensor /= world
    if rank == 0:
        torch.save({"world": world, "loss": loss.detach(), "grads": [p.grad for p in params]}, f"{out_dir}/result.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
