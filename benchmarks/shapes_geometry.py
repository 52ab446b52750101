"""Where a model trained on the synthetic shapes puts colour and shape: mean cosine similarities of
its projected features on the held-out images and the class prompts, grouped by what two items share.

    python benchmarks/shapes_geometry.py runs/demo runs/siglip_pixel

A model that tells shapes apart has image-image and prompt-prompt similarities lower for "same
colour, other shape" than for "same class"; a model that learned colour alone has both near 1.
Its own prompt must also beat the same colour's other prompts for zero-shot to read the shape.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from flava_kit.checkpoints.loading import load_model
from flava_kit.data.sources.synthetic import SyntheticSource
from flava_kit.data.synthetic import SHAPES, class_names
from flava_kit.errors import FlavaKitError
from flava_kit.evaluation.encode import encode_texts, image_representations


def mean_where(similarity: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``similarity`` where ``mask`` is True."""
    return float(similarity[mask].mean())


def geometry(run: str, size: int, variety: float) -> dict[str, float]:
    """Mean cosines of ``run``'s features: images by class and colour, prompts by colour, images to prompts."""
    loaded = load_model(run)
    source = SyntheticSource(size, split="held_out", variety=variety, image_size=loaded.image_size)
    items = [source.read(i) for i in range(len(source))]
    labels = np.array([item["label"] for item in items])
    processor = loaded.processor()
    images = image_representations(loaded, torch.stack([processor.pixels(item["image"]) for item in items]))["projected"]
    prompts = encode_texts(loaded, [f"a {name}" for name in class_names()]).numpy()
    classes = np.arange(len(class_names()))
    colour, prompt_colour = labels // len(SHAPES), classes // len(SHAPES)  # class_names is colour-major
    same_class, other_item = labels[:, None] == labels[None], ~np.eye(len(labels), dtype=bool)
    same_colour = colour[:, None] == colour[None]
    among_images, to_prompt, among_prompts = images @ images.T, images @ prompts.T, prompts @ prompts.T
    prompt_class = labels[:, None] == classes[None]
    prompt_same_colour = colour[:, None] == prompt_colour[None]
    return {
        "image-image same class": mean_where(among_images, same_class & other_item),
        "image-image same colour, other shape": mean_where(among_images, same_colour & ~same_class),
        "image-image other colour": mean_where(among_images, ~same_colour),
        "prompt-prompt same colour": mean_where(among_prompts, (prompt_colour[:, None] == prompt_colour[None]) & (classes[:, None] != classes[None])),
        "prompt-prompt other colour": mean_where(among_prompts, prompt_colour[:, None] != prompt_colour[None]),
        "image-own prompt": mean_where(to_prompt, prompt_class),
        "image-same colour's other prompts": mean_where(to_prompt, prompt_same_colour & ~prompt_class),
        "image-other colours' prompts": mean_where(to_prompt, ~prompt_same_colour),
        "zero-shot accuracy ('a <class>')": float((to_prompt.argmax(1) == labels).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (or anything `flava-kit eval` takes as a model)")
    parser.add_argument("--size", type=int, default=600, help="held-out images (as eval_shapes)")
    parser.add_argument("--variety", type=float, default=0.0, help="held-out images' variety (eval_shapes draws them plainly)")
    args = parser.parse_args()
    try:
        tables = {run: geometry(run, args.size, args.variety) for run in args.runs}
    except FlavaKitError as error:  # a run that is not there or cannot be read: say so, no traceback
        sys.exit(f"error: {error}")
    width = max(len(key) for key in next(iter(tables.values())))
    print(f"{'mean cosine':<{width}}" + "".join(f"  {run:>24}" for run in args.runs))
    for key in next(iter(tables.values())):
        print(f"{key:<{width}}" + "".join(f"  {tables[run][key]:>24.3f}" for run in args.runs))


if __name__ == "__main__":
    main()
