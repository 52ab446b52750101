"""BEiT/FLAVA block masking, generated for a whole batch at once in torch."""

from __future__ import annotations

import itertools
import math

import torch

from flava_kit.constraints import Probability, Rate, Size
from flava_kit.registry import register


class _GridMasking:
    """A masking over a square patch grid that is set, or taken from the model (``grid: null``)."""

    grid_size: tuple[int, int] | None = None
    num_patches: int | None = None

    def _set_grid(self, grid: int | None) -> None:
        if grid is not None:
            self.grid_size, self.num_patches = (grid, grid), grid * grid

    def follow_grid(self, grid_size: tuple[int, int]) -> None:
        """Take the image encoder's patch grid when none was set; a set grid must equal it."""
        grid_size = tuple(grid_size)
        if self.grid_size is not None and self.grid_size != grid_size:
            raise ValueError(f"grid {self.grid_size[0]} masks a {self.grid_size[0]}x{self.grid_size[1]} patch grid, "
                             f"but the model's image encoder has {grid_size[0]}x{grid_size[1]} patches")  # fmt: skip
        if grid_size[0] != grid_size[1]:
            raise ValueError(f"the model's patch grid {grid_size[0]}x{grid_size[1]} is not square; this masking takes square grids")
        self._set_grid(grid_size[0])

    def _grid(self) -> tuple[int, int]:
        if self.grid_size is None:
            raise ValueError("the masking grid is unset: set grid, or let DataConfig.follow(model) take the model's")
        return self.grid_size


@register("masking", "block")
class BlockMasking(_GridMasking):
    """Rectangular blocks of patches until ``num_masking_patches`` are masked (HF ``FlavaMaskingGenerator``).

    Same distribution as HF's generator: each block has at least ``min_block_patches`` (fewer only
    when fewer remain), an aspect ratio in [``min_aspect``, ``1/min_aspect``], and up to
    ``attempts`` tries to land where it masks something new without overshooting. Rows of a batch
    are drawn together: all of a round's attempts are evaluated at once against integral images of
    the masks, which equals trying them one by one because a mask only changes on success.
    With ``exact``, rows that stop short get random extra patches to reach the count exactly.
    """

    @staticmethod
    def recipe_checks(node: dict, path: tuple, recipe: dict):
        """At most every patch is masked; blocks are not larger than allowed (:data:`flava_kit.contracts.RecipeChecks`)."""
        patches = node["grid"] ** 2 if node["grid"] is not None else None  # unset: checked when the model's grid is taken
        if patches is not None and node["num_masking_patches"] > patches:
            yield path + ("num_masking_patches",), f"{node['num_masking_patches']} is more than the grid's {patches} patches", f"at most {patches}"
        if node["max_block_patches"] is not None and node["max_block_patches"] < node["min_block_patches"]:
            yield path + ("max_block_patches",), f"{node['max_block_patches']} is below min_block_patches {node['min_block_patches']}"

    def __init__(
        self,
        grid: Size | None = None,
        num_masking_patches: Size = 75,
        min_block_patches: Size = 16,
        max_block_patches: Size | None = None,
        min_aspect: Rate = 0.3,
        max_aspect: Rate | None = None,
        attempts: Size = 10,
        exact: bool = False,
    ):
        self.num_masking_patches = num_masking_patches
        self.min_block_patches = min_block_patches
        self.max_block_patches = max_block_patches or num_masking_patches
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect or 1 / min_aspect))
        self.attempts = attempts
        self.exact = exact
        self._set_grid(grid)

    def _set_grid(self, grid: int | None) -> None:
        if grid is not None and not 0 < self.num_masking_patches <= grid * grid:
            raise ValueError(f"num_masking_patches must be in 1..{grid * grid} (a {grid}x{grid} grid), got {self.num_masking_patches}")
        super()._set_grid(grid)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[batch_size, grid * grid]`` booleans, True at masked patches."""
        rows, cols = self._grid()
        result = torch.zeros(batch_size, rows * cols, dtype=torch.bool)
        # State of the rows still being masked, kept compact: finished rows leave it.
        index = torch.arange(batch_size)
        mask = torch.zeros(batch_size, rows, cols, dtype=torch.uint8)  # 0/1, summed directly by cumsum
        count = torch.zeros(batch_size, dtype=torch.long)
        tried = torch.zeros(batch_size, dtype=torch.long)  # attempts spent on the current block
        integral = torch.zeros(batch_size, rows + 1, cols + 1, dtype=torch.int32)  # zero first row/column
        r_index, c_index = torch.arange(rows), torch.arange(cols)
        low, high = self.log_aspect

        for round_ in itertools.count():
            if not index.numel():
                break
            # Early blocks almost always land at the first attempt, so early rounds evaluate three;
            # a row that missed goes on with its next attempts next round (HF's sequence exactly).
            n, tries = index.numel(), min(3 if round_ < 3 else self.attempts, self.attempts)
            draws = torch.rand(4, n, tries, generator=generator)
            budget = (self.num_masking_patches - count).clamp(max=self.max_block_patches)[:, None]
            area = self.min_block_patches + draws[0] * (budget - self.min_block_patches)
            aspect = torch.exp(low + draws[1] * (high - low))
            height = torch.round(torch.sqrt(area * aspect)).long()
            width = torch.round(torch.sqrt(area / aspect)).long()
            fits = (width < cols) & (height < rows)
            height, width = height * fits, width * fits  # a block that does not fit masks nothing
            top = (draws[2] * (rows - height + 1)).long()
            left = (draws[3] * (cols - width + 1)).long()
            new = height * width
            if round_ > 0:  # subtract already-masked patches inside every candidate block (round 0: none)
                integral[:n, 1:, 1:] = mask.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32)
                flat = integral[:n].view(n, -1)
                bottom, right = top + height, left + width
                corners = torch.stack([bottom * (cols + 1) + right, top * (cols + 1) + left, top * (cols + 1) + right, bottom * (cols + 1) + left])
                values = flat.gather(1, corners.permute(1, 0, 2).reshape(n, -1)).view(n, 4, tries)
                new = new - (values[:, 0] + values[:, 1] - values[:, 2] - values[:, 3])
            allowed = (tried[:, None] + torch.arange(tries)) < self.attempts
            ok = fits & (new > 0) & (new <= budget) & allowed
            placed = ok.any(1)
            choice = ok.long().argmax(1, keepdim=True)  # the first attempt that works, as HF's loop
            t, l, h, w = (v.gather(1, choice) for v in (top, left, height, width))
            h, w = h * placed[:, None], w * placed[:, None]  # rows where no attempt worked place nothing
            # (index - start) as unsigned is below the size exactly when start <= index < start + size.
            in_rows = ((r_index - t).to(torch.uint8) < h.to(torch.uint8)).to(torch.uint8)
            in_cols = ((c_index - l).to(torch.uint8) < w.to(torch.uint8)).to(torch.uint8)
            mask |= in_rows[:, :, None] * in_cols[:, None, :]
            count += new.gather(1, choice)[:, 0] * placed
            tried = torch.where(placed, 0, tried + tries)
            going = (placed & (count < self.num_masking_patches)) | (~placed & (tried < self.attempts))
            if not bool(going.all()):
                done = ~going
                result[index[done]] = mask[done].flatten(1).bool()
                index, mask, count, tried = index[going], mask[going], count[going], tried[going]
        if self.exact:
            result = _top_up(result, self.num_masking_patches, generator)
        return result


def _top_up(mask: torch.Tensor, target: int, generator: torch.Generator | None) -> torch.Tensor:
    """Mask random extra patches in rows with fewer than ``target``."""
    deficit = target - mask.sum(1, keepdim=True)
    noise = torch.rand(mask.shape, generator=generator).masked_fill(mask, 2.0)  # masked ones sort last
    rank = noise.argsort(1).argsort(1)
    return mask | (rank < deficit)


@register("masking", "random")
class RandomMasking(_GridMasking):
    """Exactly ``round(ratio * N)`` patches per image, chosen uniformly (MAE-style)."""

    def __init__(self, grid: Size | None = None, ratio: Probability = 0.4):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {ratio}")
        self.ratio = ratio
        self._set_grid(grid)

    @property
    def num_masking_patches(self) -> int:
        """``round(ratio * N)`` for the grid's ``N`` patches."""
        rows, cols = self._grid()
        return round(self.ratio * rows * cols)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[batch_size, grid * grid]`` booleans, True at masked patches."""
        rows, cols = self._grid()
        rank = torch.rand(batch_size, rows * cols, generator=generator).argsort(1).argsort(1)
        return rank < self.num_masking_patches
