"""Anchors at fixed strides with unrounded base anchors (mmdet's ``AnchorGenerator`` geometry).

torchvision's ``AnchorGenerator`` differs from mmdet 3.x's in two ways that change proposals:

- it rounds the base anchors to whole pixels (a 32 px anchor of aspect ratio 0.5 is 45.25 px wide
  in mmdet, 46 px in torchvision);
- it derives each level's stride from the padded image size and the feature-map size by integer
  division. At P6 (a max-pool of P5) the grid is ``ceil(H / 64)``, so a 480 px side gives stride
  ``480 // 8 = 60`` instead of 64, and every P6 anchor is shifted.

``StridedAnchorGenerator`` takes the strides explicitly (4, 8, 16, 32, 64 for FPN P2-P6) and keeps
the base anchors as computed. Anchor order is torchvision's and mmdet's: positions row-major,
then aspect ratios (h/w, the order given), then sizes. Sizes are anchor side lengths in pixels:
mmdet's ``scales=[8]`` at stride ``s`` is size ``8 * s``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList


class StridedAnchorGenerator(AnchorGenerator):
    """An ``AnchorGenerator`` with explicit per-level strides and optionally unrounded base anchors.

    Args:
        sizes: anchor sizes per level, e.g. ``((32,), (64,), (128,), (256,), (512,))``.
        aspect_ratios: height/width ratios per level.
        strides: one stride (pixels) per level.
        round_base_anchors: ``True`` reproduces torchvision's rounding; ``False`` is mmdet's.
    """

    def __init__(
        self,
        *,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[Sequence[float]],
        strides: Sequence[int],
        round_base_anchors: bool = False,
    ) -> None:
        if not len(sizes) == len(aspect_ratios) == len(strides):
            raise ValueError(
                f"sizes, aspect_ratios and strides need one entry per level, got {len(sizes)}, "
                f"{len(aspect_ratios)}, {len(strides)}"
            )
        self.round_base_anchors = bool(round_base_anchors)
        self.strides = tuple(int(s) for s in strides)
        super().__init__(sizes=tuple(tuple(s) for s in sizes), aspect_ratios=tuple(tuple(a) for a in aspect_ratios))

    def generate_anchors(
        self,
        scales: list[float],
        aspect_ratios: list[float],
        dtype: torch.dtype = torch.float32,
        device: torch.device = torch.device("cpu"),  # noqa: B008 (torchvision parent signature)
    ) -> torch.Tensor:
        """Base anchors [A, 4] centred at (0, 0): ratio-major, then size."""
        scales_t = torch.as_tensor(scales, dtype=dtype, device=device)
        ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        widths = (w_ratios[:, None] * scales_t[None, :]).view(-1)
        heights = (h_ratios[:, None] * scales_t[None, :]).view(-1)
        base = torch.stack([-widths, -heights, widths, heights], dim=1) / 2
        return base.round() if self.round_base_anchors else base

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """All anchors [sum(H*W*A), 4] per image, level by level."""
        if len(feature_maps) != len(self.strides):
            raise ValueError(f"{len(feature_maps)} feature maps but {len(self.strides)} strides")
        grid_sizes = [list(f.shape[-2:]) for f in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [[torch.tensor(s, device=device), torch.tensor(s, device=device)] for s in self.strides]
        self.set_cell_anchors(dtype, device)
        per_level = self.grid_anchors(grid_sizes, strides)
        anchors = torch.cat(per_level)
        return [anchors for _ in image_list.image_sizes]
