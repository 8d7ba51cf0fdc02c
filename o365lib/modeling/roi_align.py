"""Multi-scale RoIAlign as one sparse matrix product: the same numbers as torchvision, faster on CPU.

torchvision's CPU ``roi_align`` backward recomputes the bilinear weights of every sample point
once per channel and runs on one thread; in a ResNet-50 Cascade R-CNN training step on 2 cores it
took a third of the time. RoIAlign is linear in the features, so for fixed boxes it is a sparse
matrix ``S`` (one row per output bin, one column per feature-map pixel of every FPN level, exactly
``4 * sampling_ratio**2`` bilinear weights per row, zeros included):

    pooled = S @ features        (features flattened to [pixels, channels], channels last)
    grad_features = S.T @ grad_pooled

Both products are weighted ``embedding_bag`` gathers (the backward over ``S``'s entries sorted by
column). On the default detector they beat both a sparse COO product (training 1.18x,
``bench/bench_train_cpu.py``) and torchvision's forward kernel (val predictions 1.25x,
``bench/bench_infer_cpu.py``). ``S`` reproduces torchvision's ``roi_align(aligned=False)``
exactly: bins of ``max(roi_size, 1) / output_size`` feature pixels, ``sampling_ratio x
sampling_ratio`` samples per bin at the sub-bin centres, samples outside ``[-1, size]`` contribute
zero, coordinates clamped at 0 and at the last pixel, and the samples of a bin averaged. Levels are
assigned by torchvision's ``LevelMapper`` (canonical 224 px at level 4; the tiny preset passes
``canonical_scale=64`` for its 128 px images).

The gather path runs for CPU features (training and inference) with a fixed ``sampling_ratio > 0``,
a square output and torchvision's geometry. CUDA tensors use torchvision's ``MultiScaleRoIAlign``
unchanged. The module has no parameters or buffers, so checkpoints are the same either way. The
pooled features come back as [R, C, P, P] laid out channels last (``cascade.StageHead`` flattens
them without a copy).

mmdet 3.x geometry (the ``"mmdet"`` preset) is selected by ``aligned=True`` (half-pixel shifted
sampling grid, no minimum box size of one feature pixel), ``sampling_ratio=0`` (adaptive:
``ceil(bin size)`` samples per bin and axis), ``level_mapping="mmdet"`` (level
``floor(log2(sqrt(wh) / 56 + 1e-6))`` clamped to the available levels, where torchvision adds its
1e-6 to ``sqrt(wh) / 224``) and explicit ``strides`` (scales ``1 / stride`` instead of ones inferred
from the feature and image sizes). That path pools each level with ``torchvision.ops.roi_align``.

Low-precision features (bf16/fp16, e.g. under ``torch.autocast("cpu", dtype=torch.bfloat16)``) are
pooled in float32 on every path and returned in the features' dtype, so the box head sees the same
dtype it would without this module and the sampling weights keep float32 precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

#: feature dtypes the CPU gather pools in directly. bf16 (training's autocast) needs no float32 copies
#: of the features and pooled features: 1.11x a training step (bench/README.md); the sums run in float32
#: inside ``embedding_bag``, so its pooled features are float32 pooling rounded once to bf16 (plus
#: bf16-rounded bilinear weights).
GATHER_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
LEVEL_MAPPINGS = ("torchvision", "mmdet")


class _SparseGather(torch.autograd.Function):
    """``S @ flat`` for ``S`` given row by row ([rows, K] columns and weights, K entries per row).

    Forward is a weighted ``embedding_bag`` gather (5x faster than a sparse COO product on CPU, and
    no zero-filled output); backward ``S.T @ grad`` is the same gather over ``S``'s entries sorted
    by column (a stable sort, so the sums run in a fixed order and resumed runs stay bit-exact).
    """

    @staticmethod
    def forward(ctx, flat, columns, weights):
        ctx.save_for_backward(columns, weights)
        ctx.num_pixels = flat.shape[0]
        return F.embedding_bag(columns, flat, per_sample_weights=weights, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        columns, weights = ctx.saved_tensors
        per_row = columns.shape[1]
        keys = columns.reshape(-1)
        # int32 keys sort in about half the time of int64 ones
        keys = keys.int() if ctx.num_pixels < 2**31 else keys
        sorted_columns, order = torch.sort(keys, stable=True)
        counts = torch.bincount(sorted_columns, minlength=ctx.num_pixels)
        grad_flat = F.embedding_bag(
            order // per_row, grad.contiguous(), offsets=counts.cumsum(0) - counts,
            per_sample_weights=weights.reshape(-1)[order], mode="sum",
        )
        return grad_flat, None, None


def _axis_samples(
    start: torch.Tensor, length: torch.Tensor, size: torch.Tensor, *, output_size: int, grid: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices [R, P, g, 2] and weights [R, P, g, 2] (low/high neighbour) along one axis."""
    steps = torch.arange(output_size * grid, dtype=start.dtype, device=start.device)
    bin_size = length / output_size
    # torchvision: start + p * bin + (i + 0.5) * bin / grid, for bin p and sample i
    position = (
        start[:, None]
        + (steps // grid)[None] * bin_size[:, None]
        + ((steps % grid) + 0.5)[None] * bin_size[:, None] / grid
    )
    size = size[:, None].to(start.dtype)
    # a non-finite box (a diverging run) pools zeros, as torchvision's does; never a wild index
    position = torch.where(torch.isfinite(position), position, torch.full_like(position, -2.0))
    inside = (position >= -1.0) & (position <= size)
    position = position.clamp(min=0)
    low = position.floor()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    position = torch.where(at_edge, low, position)
    frac = position - low
    low = low.long()
    high = torch.where(at_edge, low, low + 1)
    index = torch.stack([low, high], -1)
    weight = torch.stack([1 - frac, frac], -1) * inside[..., None]
    shape = (start.shape[0], output_size, grid, 2)
    return index.view(shape), weight.view(shape)


def sampling_matrix(
    rois: torch.Tensor,
    *,
    levels: torch.Tensor,
    level_shapes: list[tuple[int, int, int]],
    scales: list[float],
    output_size: int,
    sampling_ratio: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoIAlign's matrix for ``rois`` [R, 5] (batch, xyxy) row by row: columns and weights, each
    [R * P * P, 4 * sampling_ratio**2].

    Row ``roi * P * P + y * P + x`` holds the bilinear neighbours of bin (y, x) of that RoI;
    columns index the channels-last concatenation of the levels (``level_shapes`` are (N, H, W)
    each), so gathering that [pixels, C] matrix gives the pooled features as [R * P * P, C].
    """
    device, dtype = rois.device, rois.dtype
    heights = torch.tensor([s[1] for s in level_shapes], device=device)[levels]
    widths = torch.tensor([s[2] for s in level_shapes], device=device)[levels]
    sizes = [n * h * w for n, h, w in level_shapes]
    offsets = torch.tensor([0, *sizes[:-1]], device=device).cumsum(0)[levels]
    scale = torch.tensor(scales, dtype=dtype, device=device)[levels]
    x1, y1 = rois[:, 1] * scale, rois[:, 2] * scale
    roi_w = (rois[:, 3] * scale - x1).clamp(min=1.0)
    roi_h = (rois[:, 4] * scale - y1).clamp(min=1.0)
    grid = sampling_ratio
    y_index, y_weight = _axis_samples(y1, roi_h, heights, output_size=output_size, grid=grid)
    x_index, x_weight = _axis_samples(x1, roi_w, widths, output_size=output_size, grid=grid)
    num, size = rois.shape[0], output_size
    # axes: roi, bin y, bin x, sample y, sample x, neighbour y, neighbour x
    y_index = y_index.view(num, size, 1, grid, 1, 2, 1)
    x_index = x_index.view(num, 1, size, 1, grid, 1, 2)
    base = offsets + rois[:, 0].long() * heights * widths
    columns = base.view(num, 1, 1, 1, 1, 1, 1) + y_index * widths.view(num, 1, 1, 1, 1, 1, 1) + x_index
    weights = y_weight.view(num, size, 1, grid, 1, 2, 1) * x_weight.view(num, 1, size, 1, grid, 1, 2)
    weights = weights / (grid * grid)
    per_row = 4 * grid * grid
    return columns.reshape(-1, per_row), weights.reshape(-1, per_row)


def mmdet_levels(boxes: torch.Tensor, *, num_levels: int, finest_scale: float = 56.0) -> torch.Tensor:
    """mmdet's FPN level per box [N, 4]: ``floor(log2(sqrt(w * h) / finest_scale + 1e-6))``, clamped."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    levels = torch.nan_to_num(levels, nan=0.0, posinf=num_levels - 1, neginf=0.0)
    return levels.clamp(min=0, max=num_levels - 1).long()


class SparseMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with the sparse-matrix CPU path described above.

    Args (besides torchvision's ``featmap_names``, ``output_size``, ``sampling_ratio``):
        aligned: half-pixel aligned sampling (mmdet, detectron2) instead of torchvision's default.
        level_mapping: ``"torchvision"`` (canonical 224 px box at level 4) or ``"mmdet"``
            (``finest_scale`` px at the first level).
        strides: feature strides of the pooled levels (e.g. ``(4, 8, 16, 32)``); ``None`` infers the
            scales from the feature and image sizes, as torchvision does.
        finest_scale: mmdet's level-0 box scale.
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | tuple[int, int] | list[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        aligned: bool = False,
        level_mapping: str = "torchvision",
        strides: Sequence[int] | None = None,
        finest_scale: float = 56.0,
    ) -> None:
        super().__init__(
            featmap_names, output_size, sampling_ratio,
            canonical_scale=canonical_scale, canonical_level=canonical_level,
        )
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError(f"level_mapping must be one of {LEVEL_MAPPINGS}, got {level_mapping!r}")
        if strides is not None and len(strides) != len(featmap_names):
            raise ValueError(f"strides {tuple(strides)} need one entry per feature map {featmap_names}")
        self.aligned = bool(aligned)
        self.level_mapping = level_mapping
        self.strides = None if strides is None else tuple(int(s) for s in strides)
        self.finest_scale = float(finest_scale)

    def _uses_torchvision_geometry(self) -> bool:
        return not self.aligned and self.level_mapping == "torchvision" and self.strides is None

    def _pool_per_level(
        self, features: list[torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """RoIAlign level by level with ``torchvision.ops.roi_align`` (any geometry option)."""
        if self.strides is not None:
            scales = [1.0 / s for s in self.strides]
        else:
            if self.scales is None:
                self.scales, self.map_levels = _setup_scales(
                    features, image_shapes, self.canonical_scale, self.canonical_level
                )
            scales = list(self.scales)
        rois = _convert_to_roi_format(boxes).to(features[0].dtype)
        if len(features) == 1:
            levels = torch.zeros(len(rois), dtype=torch.int64, device=rois.device)
        elif self.level_mapping == "mmdet":
            levels = mmdet_levels(rois[:, 1:], num_levels=len(features), finest_scale=self.finest_scale)
        else:
            if self.map_levels is None:
                self.scales, self.map_levels = _setup_scales(
                    features, image_shapes, self.canonical_scale, self.canonical_level
                )
            levels = self.map_levels(boxes).clamp(0, len(features) - 1)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            index = torch.where(levels == level)[0]
            if index.numel():
                result[index] = roi_align(
                    feature, rois[index], self.output_size, spatial_scale=scale,
                    sampling_ratio=self.sampling_ratio, aligned=self.aligned,
                ).to(result.dtype)
        return result

    def forward(
        self,
        x: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Pooled features [R, C, P, P] of ``boxes`` (per image, xyxy in resized-image pixels)."""
        features = _filter_input(x, self.featmap_names)
        input_dtype = features[0].dtype
        if input_dtype not in GATHER_DTYPES and features[0].device.type == "cpu":
            # fp16 on CPU: pool in float32, hand back the features' dtype
            with torch.autocast("cpu", enabled=False):
                full = {name: tensor.float() for name, tensor in x.items() if name in self.featmap_names}
                pooled = self.forward(full, [b.float() for b in boxes], image_shapes)
            return pooled.to(input_dtype)
        if not self._uses_torchvision_geometry():
            return self._pool_per_level(features, boxes, image_shapes)
        if features[0].device.type != "cpu" or self.sampling_ratio <= 0 or self.output_size[0] != self.output_size[1]:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        dtype = features[0].dtype
        # sample positions and weights in float32 at least; a bf16 gather takes bf16 weights (it sums in float32)
        geometry = torch.promote_types(dtype, torch.float32)
        rois = _convert_to_roi_format(boxes).to(geometry)
        if len(features) > 1:  # clamped: torchvision's mapper gives garbage levels for non-finite boxes
            levels = self.map_levels(boxes).clamp(0, len(features) - 1)
        else:
            levels = torch.zeros(len(rois), dtype=torch.int64)
        size = self.output_size[0]
        columns, weights = sampling_matrix(
            rois.detach(),
            levels=levels,
            level_shapes=[(f.shape[0], f.shape[2], f.shape[3]) for f in features],
            scales=list(self.scales),
            output_size=size,
            sampling_ratio=self.sampling_ratio,
        )
        channels = features[0].shape[1]
        flat = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, channels) for f in features])
        pooled = _SparseGather.apply(flat, columns, weights.to(dtype))
        return pooled.view(len(rois), size, size, channels).permute(0, 3, 1, 2)
