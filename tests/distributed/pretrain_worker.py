"""Run under torchrun: pretrain the tiny recipe as one rank (DDP, or FSDP with train.fsdp=true).

Arguments: the output directory, then recipe overrides, --resume and --stop-after=N.
"""

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from flava_kit.train.run import pretrain

TINY = str(Path(__file__).parent.parent / "fixtures" / "tiny_pretrain.yaml")

if __name__ == "__main__":
    out, extra = Path(sys.argv[1]), sys.argv[2:]  # extra: overrides, "--resume", "--stop-after=N"
    overrides = [a for a in extra if not a.startswith("--")]
    stop = next((int(a.split("=")[1]) for a in extra if a.startswith("--stop-after=")), None)
    run = pretrain(TINY, ["train.steps=4", "train.checkpoint_every=2", *overrides], run_dir=out / "run",
                   resume="--resume" in extra, stop_after=stop)  # fmt: skip
    if "train.fsdp=true" not in overrides:  # a replica holds all weights; a shard only its part
        state = {k: v.detach().contiguous() for k, v in run.model.state_dict().items()}
        save_file(state, out / f"rank{dist.get_rank()}.safetensors")
    dist.destroy_process_group()
