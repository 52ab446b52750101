"""Run under torchrun: each rank scores its half of a batch with a contrastive loss (global or sigmoid).

Writes the rank-averaged loss and the DDP-averaged gradients to ``OUT/result.pt`` (rank 0).
Usage: ``contrastive_worker.py OUT [global_contrastive|sigmoid_contrastive]``.
"""

import sys

import torch
import torch.distributed as dist

from flava_kit.losses import GlobalContrastiveLoss, SigmoidContrastiveLoss


def make_problem(kind: str = "global_contrastive", seed: int = 0):
    """The same projections, loss parameters and global batch on every rank (and in the reference).

    Returns (parameters, a function scoring (images, texts) -> loss, images, texts).
    """
    torch.manual_seed(seed)
    image_proj, text_proj = torch.nn.Linear(10, 6), torch.nn.Linear(12, 6)
    images, texts = torch.randn(8, 10), torch.randn(8, 12)
    normalize = torch.nn.functional.normalize
    if kind == "global_contrastive":
        logit_scale = torch.nn.Parameter(torch.tensor(2.0))
        loss, extra = GlobalContrastiveLoss().train(), [logit_scale]

        def score(i, t):
            return loss.score(normalize(image_proj(i), dim=-1), normalize(text_proj(t), dim=-1), logit_scale).loss
    else:  # a temperature and bias that make the pairwise terms far from saturated
        loss = SigmoidContrastiveLoss(temperature_init=3.0, bias_init=-1.0).train()
        extra = list(loss.parameters())

        def score(i, t):
            return loss.score(normalize(image_proj(i), dim=-1), normalize(text_proj(t), dim=-1)).loss

    return [*image_proj.parameters(), *text_proj.parameters(), *extra], score, images, texts


def main(out_dir: str, kind: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    params, score, images, texts = make_problem(kind)
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    loss = score(images[part], texts[part])
    loss.backward()
    for tensor in [loss.detach(), *(p.grad for p in params)]:
        dist.all_reduce(tensor)  # what DDP does with gradients: sum, then divide by the world size
        tensor /= world
    if rank == 0:
        torch.save({"world": world, "loss": loss.detach(), "grads": [p.grad for p in params]}, f"{out_dir}/result.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "global_contrastive")
