"""The sparse-matrix multi-scale RoIAlign equals torchvision's, values and gradients."""

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from o365lib.modeling.roi_align import SparseMultiScaleRoIAlign

# (feature-map names, (H, W) per level, image (H, W)): ResNet-style c2-c5 and the tiny preset's c3-c5
LAYOUTS = [
    (["0", "1", "2", "3"], [(64, 48), (32, 24), (16, 12), (8, 6)], (256, 192)),
    (["0", "1", "2"], [(16, 20), (8, 10), (4, 5)], (128, 160)),
    (["0"], [(20, 20)], (80, 80)),
]


def _inputs(names, shapes, image, *, dtype, seed, boxes_per_image=(200, 0, 150)):
    generator = torch.Generator().manual_seed(seed)
    features = {
        name: torch.randn(len(boxes_per_image), 5, h, w, generator=generator, dtype=dtype, requires_grad=True)
        for name, (h, w) in zip(names, shapes)
    }
    extent = torch.tensor([image[1], image[0]], dtype=dtype)
    boxes = []
    for count in boxes_per_image:
        # corners up to 10% outside the image, sizes from sub-pixel to the whole image
        xy = (torch.rand(count, 2, generator=generator, dtype=dtype) * 1.2 - 0.1) * extent
        wh = 0.1 + torch.rand(count, 2, generator=generator, dtype=dtype) ** 3 * extent
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    return features, boxes, [image] * len(boxes_per_image)


@pytest.mark.parametrize("layout", range(len(LAYOUTS)))
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_values_and_gradients_equal_torchvision(layout, sampling_ratio):
    names, shapes, image = LAYOUTS[layout]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float64, seed=layout)
    reference = MultiScaleRoIAlign(names, 7, sampling_ratio)(features, boxes, image_shapes)
    ours = SparseMultiScaleRoIAlign(names, 7, sampling_ratio)(features, boxes, image_shapes)
    assert ours.shape == reference.shape == (350, 5, 7, 7)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, list(features.values()), grad)
    got = torch.autograd.grad(ours, list(features.values()), grad)
    assert sum(float(g.abs().sum()) for g in got) > 0
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_float32_close_to_torchvision():
    names, shapes, image = LAYOUTS[0]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float32, seed=5)
    reference = MultiScaleRoIAlign(names, 7, 2)(features, boxes, image_shapes)
    ours = SparseMultiScaleRoIAlign(names, 7, 2)(features, boxes, image_shapes)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_no_boxes_at_all():
    names, shapes, image = LAYOUTS[1]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float32, seed=0, boxes_per_image=(0, 0))
    ours = SparseMultiScaleRoIAlign(names, 7, 1)(features, boxes, image_shapes)
    assert ours.shape == (0, 5, 7, 7)
    ours.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() == 0 for f in features.values())


def test_adaptive_sampling_ratio_falls_back_to_torchvision():
    names, shapes, image = LAYOUTS[0]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float64, seed=2)
    reference = MultiScaleRoIAlign(names, 7, -1)(features, boxes, image_shapes)
    ours = SparseMultiScaleRoIAlign(names, 7, -1)(features, boxes, image_shapes)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def test_non_finite_boxes_pool_zeros():
    names, shapes, image = LAYOUTS[0]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float64, seed=3)
    reference = MultiScaleRoIAlign(names, 7, 2)(features, boxes, image_shapes)
    # a diverging run's boxes (torchvision's CPU kernel crashes on infinite ones, so it is not asked)
    boxes[0][:3] = torch.tensor([[float("nan")] * 4, [0.0, 0.0, float("inf"), 5.0], [-float("inf"), 1.0, 9.0, 9.0]])
    ours = SparseMultiScaleRoIAlign(names, 7, 2)(features, boxes, image_shapes)
    assert ours[:3].abs().sum() == 0
    torch.testing.assert_close(ours[3:], reference[3:], rtol=0, atol=1e-12)


def test_gather_pools_training_and_inference_alike(monkeypatch):
    """On CPU the gather runs with and without a backward, and both give torchvision's numbers."""
    from o365lib.modeling import roi_align as module

    names, shapes, image = LAYOUTS[1]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float32, seed=3)
    pooler = SparseMultiScaleRoIAlign(names, 7, 2)
    reference = MultiScaleRoIAlign(names, 7, 2)(features, boxes, image_shapes).detach()
    calls = []
    original = module._SparseGather.apply
    monkeypatch.setattr(module._SparseGather, "apply", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        without_grad = pooler(features, boxes, image_shapes)
    with_grad = pooler(features, boxes, image_shapes)
    assert calls == [1, 1]
    assert with_grad.requires_grad and not without_grad.requires_grad
    torch.testing.assert_close(without_grad, with_grad.detach(), rtol=0, atol=0)
    torch.testing.assert_close(without_grad, reference, rtol=1e-5, atol=1e-5)
    # laid out (roi, y, x, channel), as the cascade's StageHead takes it without a copy
    assert with_grad.is_contiguous(memory_format=torch.channels_last)


def test_bf16_features_pool_in_bf16_close_to_float32_pooling():
    """Training's autocast hands bf16 features: the gather pools them as they are (no float32 copies),
    with float32 sample geometry, and lands within bf16 rounding of pooling their float32 values."""
    names, shapes, image = LAYOUTS[0]
    features, boxes, image_shapes = _inputs(names, shapes, image, dtype=torch.float32, seed=6)
    as_bf16 = {name: f.detach().bfloat16().requires_grad_() for name, f in features.items()}
    widened = {name: f.detach().float().requires_grad_() for name, f in as_bf16.items()}  # the same values
    pooler = SparseMultiScaleRoIAlign(names, 7, 2)
    ours = pooler(as_bf16, boxes, image_shapes)
    reference = pooler(widened, boxes, image_shapes)
    assert ours.dtype == torch.bfloat16 and ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours.float(), reference, rtol=2**-7, atol=2**-7 * float(reference.detach().abs().max()) / 8)
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(0))
    got = torch.autograd.grad(ours, list(as_bf16.values()), grad.bfloat16())
    expected = torch.autograd.grad(reference, list(widened.values()), grad)
    for a, b in zip(got, expected):
        assert a.dtype == torch.bfloat16
        if not b.abs().sum():  # a level no box maps to
            assert not a.abs().sum()
            continue
        relative = float((a.float() - b).norm() / b.norm())
        assert relative < 2**-7, relative
