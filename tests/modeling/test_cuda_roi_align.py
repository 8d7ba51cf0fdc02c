"""``SparseMultiScaleRoIAlign`` on CUDA falls through to torchvision's kernels and gives the numbers
of its CPU sparse-matrix path: values and gradients, torchvision and mmdet geometry, bf16 autocast.

Skipped without a CUDA GPU (CI has none); ``bench/gpu_check.sh`` runs them on the GPU machine.
"""

import pytest
import torch

from o365lib.modeling.roi_align import SparseMultiScaleRoIAlign

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by bench/gpu_check.sh)"),
]

NAMES = ["0", "1", "2", "3"]
SHAPES = [(64, 48), (32, 24), (16, 12), (8, 6)]
IMAGE = (256, 192)
GEOMETRIES = {
    "torchvision": {"sampling_ratio": 2},
    "mmdet": {"sampling_ratio": 0, "aligned": True, "level_mapping": "mmdet", "strides": (4, 8, 16, 32)},
}


def _inputs(*, dtype, seed, boxes_per_image=(200, 0, 150)):
    generator = torch.Generator().manual_seed(seed)
    features = {
        name: torch.randn(len(boxes_per_image), 5, h, w, generator=generator, dtype=dtype)
        for name, (h, w) in zip(NAMES, SHAPES)
    }
    extent = torch.tensor([IMAGE[1], IMAGE[0]], dtype=dtype)
    boxes = []
    for count in boxes_per_image:
        xy = (torch.rand(count, 2, generator=generator, dtype=dtype) * 1.2 - 0.1) * extent
        wh = 0.1 + torch.rand(count, 2, generator=generator, dtype=dtype) ** 3 * extent
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    return features, boxes, [IMAGE] * len(boxes_per_image)


def _pool(module, features, boxes, device, *, autocast=False):
    """Pooled features and the gradients of the features for a fixed random output gradient."""
    leaves = {k: v.to(device).requires_grad_(True) for k, v in features.items()}
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
        pooled = module(leaves, [b.to(device) for b in boxes], [IMAGE] * len(boxes))
    grad = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(1)).to(device, pooled.dtype)
    grads = torch.autograd.grad(pooled, list(leaves.values()), grad, allow_unused=True)
    return pooled, [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves.values())]


def check_device_matches_cpu(device, geometry, dtype=torch.float64, atol=1e-10):
    features, boxes, _ = _inputs(dtype=dtype, seed=3)
    module = SparseMultiScaleRoIAlign(NAMES, 7, **GEOMETRIES[geometry])
    expected, expected_grads = _pool(module, features, boxes, "cpu")
    module = SparseMultiScaleRoIAlign(NAMES, 7, **GEOMETRIES[geometry])  # fresh: scales are cached per module
    got, got_grads = _pool(module, features, boxes, device)
    assert got.device.type == torch.device(device).type and got.shape == expected.shape == (350, 5, 7, 7)
    torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=atol)
    assert sum(float(g.abs().sum()) for g in got_grads) > 0
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=atol)


def check_bf16_autocast_matches_cpu(device):
    """bf16 features under autocast: pooled in float32 on both devices, returned as bf16."""
    features, boxes, _ = _inputs(dtype=torch.float32, seed=4)
    features = {k: v.to(torch.bfloat16) for k, v in features.items()}
    expected, _ = _pool(SparseMultiScaleRoIAlign(NAMES, 7, 2), features, boxes, "cpu", autocast=True)
    got, _ = _pool(SparseMultiScaleRoIAlign(NAMES, 7, 2), features, boxes, device, autocast=True)
    assert expected.dtype == got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float().cpu(), expected.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_cuda_roi_align_equals_cpu_sparse_path(geometry):
    check_device_matches_cpu("cuda", geometry)


def test_cuda_roi_align_float32_close_to_cpu():
    check_device_matches_cpu("cuda", "torchvision", dtype=torch.float32, atol=1e-5)


def test_cuda_roi_align_bf16_autocast():
    check_bf16_autocast_matches_cpu("cuda")
