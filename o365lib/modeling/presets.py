"""Detector presets: one frozen dataclass per preset, holding the values ``build_detector`` starts from.

- :class:`TinyPreset` (``"tiny"``, the tiny backbone): 128 px images (the CPU book), FPN 64 channels
  on c2-c5 (strides 4-64), anchors 8-181 px (two sizes per level, about 2x the stride, so that
  every object of 7-92 px has an anchor of IoU >= 0.5), RoIAlign with one sample per bin on the
  level where a box is ~8x the stride (canonical 64 px at level 4: boxes under 32 px pool at
  stride 4, 64-128 px at stride 16), a small RPN budget, 64 sampled RoIs per image (the box head's
  share of a CPU step stays small), a 256-d box head;
- :class:`ResNetPreset` (``"resnet"``, any ResNet/ResNeXt): the usual 800x1333 Cascade R-CNN settings
  (FPN 256, anchors 32-512 px, 2000/2000 and 1000/1000 proposals, 512 RoIs, a 1024-d box head),
  anchors scaled down for smaller ``min_size`` (:func:`default_anchor_sizes`);
- :class:`MmdetPreset` (``"mmdet"``, any ResNet/ResNeXt): mmdet 3.x's Cascade R-CNN inference, number
  for number (``o365lib.modeling.mmdet_checkpoint`` loads its checkpoints into it): unrounded
  anchors at fixed strides 4-64, mmdet's proposal selection, aligned RoIAlign with adaptive
  sampling and mmdet's level rule, box deltas times mmdet's stds, logits averaged over the stages,
  mmdet's class-aware NMS and no box-size filter or candidate cap, normalisation on the 0-255
  scale, SmoothL1 beta 1.0. README.md "Differences from mmdet defaults" lists what the other
  presets do instead.

:data:`PRESET_CONFIGS` is the one place the values live; :data:`PRESETS` shows each as a plain dict
(what a model's cache key hashes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

from o365lib.modeling.cascade import MMDET_BOX_STDS

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
#: mmdet's ``DetDataPreprocessor`` mean/std (RGB, 0-255 scale).
MMDET_IMAGE_MEAN = (123.675, 116.28, 103.53)
MMDET_IMAGE_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True, kw_only=True)
class DetectorPreset:
    """What a preset fixes. Sizes and budgets have no default; the inference conventions default to
    torchvision's (what ``"tiny"`` and ``"resnet"`` use and ``"mmdet"`` replaces)."""

    # sizes and budgets
    fpn_channels: int
    min_size: int
    max_size: int  # a floor: build_detector raises it for larger min_size (ratio 1333 / 800)
    rpn_pre_nms_top_n: tuple[int, int]  # (training, testing), per FPN level
    rpn_post_nms_top_n: tuple[int, int]  # (training, testing), per image
    rpn_batch_size_per_image: int
    box_batch_size_per_image: int
    box_positive_fraction: float
    representation_size: int
    returned_layers: tuple[int, ...]
    anchor_sizes: tuple[tuple[int, ...], ...] | None  # None: default_anchor_sizes(min_size)
    roi_sampling_ratio: int
    roi_canonical_scale: int
    max_candidates: int | None
    # inference conventions
    anchor_strides: tuple[int, ...] | None = None
    rpn_selection: str = "torchvision"
    roi_aligned: bool = False
    roi_level_mapping: str = "torchvision"
    roi_strides: tuple[int, ...] | None = None
    box_stds: tuple[tuple[float, ...], ...] | None = None
    box_loss_beta: float = 1.0 / 9
    stage_score_average: str = "probabilities"
    min_box_size: float = 1e-2
    nms_style: str = "torchvision"
    image_mean: tuple[float, float, float] = IMAGE_MEAN
    image_std: tuple[float, float, float] = IMAGE_STD
    input_scale: float = 1.0


@dataclass(frozen=True, kw_only=True)
class TinyPreset(DetectorPreset):
    """``"tiny"``: the CPU book's 128 px detector."""

    fpn_channels: int = 64
    min_size: int = 128
    max_size: int = 213
    # training keeps 150 proposals per level before NMS and 100 per image after it (was 600 / 300: a
    # third of each step went to NMS for 128 px images holding 6-16 objects); regime kept, bench/README.md
    rpn_pre_nms_top_n: tuple[int, int] = (150, 300)
    rpn_post_nms_top_n: tuple[int, int] = (100, 100)
    rpn_batch_size_per_image: int = 128
    box_batch_size_per_image: int = 64
    box_positive_fraction: float = 0.75
    representation_size: int = 256
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    anchor_sizes: tuple[tuple[int, ...], ...] | None = ((8, 11), (16, 23), (32, 45), (64, 91), (128, 181))
    roi_sampling_ratio: int = 1
    roi_canonical_scale: int = 64
    max_candidates: int | None = 1000


@dataclass(frozen=True, kw_only=True)
class ResNetPreset(DetectorPreset):
    """``"resnet"``: Cascade R-CNN at 800x1333 with torchvision's conventions."""

    fpn_channels: int = 256
    min_size: int = 800
    max_size: int = 1333
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000)
    rpn_post_nms_top_n: tuple[int, int] = (2000, 1000)
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    representation_size: int = 1024
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    anchor_sizes: tuple[tuple[int, ...], ...] | None = None
    roi_sampling_ratio: int = 2
    roi_canonical_scale: int = 224
    max_candidates: int | None = 5000


@dataclass(frozen=True, kw_only=True)
class MmdetPreset(ResNetPreset):
    """``"mmdet"``: the ResNet sizes with mmdet 3.x's inference conventions."""

    anchor_sizes: tuple[tuple[int, ...], ...] | None = ((32,), (64,), (128,), (256,), (512,))
    roi_sampling_ratio: int = 0
    max_candidates: int | None = None
    anchor_strides: tuple[int, ...] | None = (4, 8, 16, 32, 64)
    rpn_selection: str = "mmdet"
    roi_aligned: bool = True
    roi_level_mapping: str = "mmdet"
    roi_strides: tuple[int, ...] | None = (4, 8, 16, 32)
    box_stds: tuple[tuple[float, ...], ...] | None = MMDET_BOX_STDS
    box_loss_beta: float = 1.0
    stage_score_average: str = "logits"
    min_box_size: float = 0.0
    nms_style: str = "mmdet"
    image_mean: tuple[float, float, float] = MMDET_IMAGE_MEAN
    image_std: tuple[float, float, float] = MMDET_IMAGE_STD
    input_scale: float = 255.0


#: The presets by name: the one place their values live.
PRESET_CONFIGS: dict[str, DetectorPreset] = {
    "tiny": TinyPreset(),
    "resnet": ResNetPreset(),
    "mmdet": MmdetPreset(),
}


class _PresetValues(Mapping):
    """``PRESETS[name]``: the values of ``PRESET_CONFIGS[name]`` as a new plain dict."""

    def __getitem__(self, name: str) -> dict:
        return asdict(PRESET_CONFIGS[name])

    def __iter__(self) -> Iterator[str]:
        return iter(PRESET_CONFIGS)

    def __len__(self) -> int:
        return len(PRESET_CONFIGS)


#: Read-only dict view of :data:`PRESET_CONFIGS` (model cache keys hash ``PRESETS[name]``).
PRESETS: Mapping[str, dict] = _PresetValues()


def default_anchor_sizes(min_size: int) -> tuple[tuple[int, ...], ...]:
    """ResNet anchor sizes for FPN levels P2..P6: 32-512 px from 600 px images up, else 16-256."""
    base = 16 if min_size <= 600 else 32
    return tuple((base * 2**level,) for level in range(5))


def preset_of(backbone: str, preset: str | None = None) -> str:
    """The preset ``build_detector`` uses: ``preset``, else "tiny" for the tiny backbone, else "resnet"."""
    return preset or ("tiny" if backbone == "tiny" else "resnet")
