"""Run under torchrun: pretrain the tiny recipe as one DDP rank, then save this rank's weights."""

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from flava_kit.train.run import pretrain

TINY = str(Path(__file__).parent.parent / "fixtures" / "tiny_pretrain.yaml")

if __name__ == "__main__":
    out = Path(sys.argv[1])
    run = pretrain(TINY, ["train.steps=4", "train.checkpoint_every=2"], run_dir=out / "run")
    state = {k: v.detach().contiguous() for k, v in run.model.state_dict().items()}
    save_file(state, out / f"rank{dist.get_rank()}.safetensors")
    dist.destroy_process_group()
