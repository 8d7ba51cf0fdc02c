"""Image preprocessing of the detector: resize, normalise, pad (torchvision's, with mmdet's options).

``DetectionTransform`` is torchvision's ``GeneralizedRCNNTransform`` (same calling convention,
same batching: images padded at the bottom/right to the batch maximum rounded up to a multiple of
32, zeros after normalisation, as mmdet's ``DetDataPreprocessor`` does) plus:

- ``input_scale``: images arrive as RGB floats in [0, 1] and are normalised as
  ``(image * input_scale - mean) / std``. With ``input_scale=255`` and mmdet's mean/std on the
  0-255 scale ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]) this is mmdet's arithmetic
  exactly (mmdet converts its BGR input to RGB first, so the channel order is RGB in both);
- an image whose resize factor is exactly 1 (short side ``min_size``, long side at most
  ``max_size``, e.g. 800 x 1200) is passed through untouched instead of being interpolated;
- ``resize_images=False`` skips resizing altogether (inputs already at the wanted size); boxes
  then come back in the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform


class DetectionTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` with ``input_scale`` and ``resize_images`` (see module docstring)."""

    def __init__(
        self,
        min_size: int | Sequence[int],
        max_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        *,
        input_scale: float = 1.0,
        resize_images: bool = True,
        size_divisible: int = 32,
    ) -> None:
        min_sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (int(min_size),)
        super().__init__(min_sizes, max_size, list(image_mean), list(image_std), size_divisible=size_divisible)
        self.input_scale = float(input_scale)
        self.resize_images = bool(resize_images)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """``(image * input_scale - mean) / std`` per channel."""
        if not image.is_floating_point():
            raise TypeError(f"images must be float tensors in [0, 1], got dtype {image.dtype}")
        dtype, device = image.dtype, image.device
        mean = torch.as_tensor(self.image_mean, dtype=dtype, device=device)
        std = torch.as_tensor(self.image_std, dtype=dtype, device=device)
        if self.input_scale != 1.0:
            image = image * self.input_scale
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None):
        """torchvision's resize, skipped when disabled or when the test-time factor is exactly 1."""
        if not self.resize_images:
            return image, target
        if not self.training:
            height, width = image.shape[-2:]
            factor = min(self.min_size[-1] / min(height, width), self.max_size / max(height, width))
            if factor == 1.0:
                return image, target
        return super().resize(image, target)
