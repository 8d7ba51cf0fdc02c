"""The cascade's box head: torchvision's TwoMLPHead numbers whatever the pooled features' layout."""

import torch
from torchvision.models.detection.faster_rcnn import TwoMLPHead

from o365lib.modeling.cascade import StageHead


def _heads():
    torch.manual_seed(0)
    ours = StageHead(5 * 7 * 7, 16).double()
    reference = TwoMLPHead(5 * 7 * 7, 16).double()
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def test_same_parameters_as_torchvision():
    ours, reference = _heads()
    assert list(ours.state_dict()) == list(reference.state_dict()) == ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"]


def test_channels_last_features_give_torchvision_values_and_gradients():
    ours, reference = _heads()
    pooled = torch.randn(11, 7, 7, 5, dtype=torch.double).permute(0, 3, 1, 2)  # (roi, y, x, channel) in memory
    assert pooled.is_contiguous(memory_format=torch.channels_last) and not pooled.is_contiguous()
    x_ours = pooled.clone(memory_format=torch.preserve_format).requires_grad_()
    x_ref = pooled.contiguous().requires_grad_()
    out_ours, out_ref = ours(x_ours), reference(x_ref)
    torch.testing.assert_close(out_ours, out_ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(out_ref)
    out_ours.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=0, atol=1e-12)
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, dict(reference.named_parameters())[name].grad, rtol=0, atol=1e-12)


def test_contiguous_and_flat_features_take_torchvision_path():
    ours, reference = _heads()
    pooled = torch.randn(3, 5, 7, 7, dtype=torch.double)
    torch.testing.assert_close(ours(pooled), reference(pooled), rtol=0, atol=0)
    torch.testing.assert_close(ours(pooled.flatten(1)), reference(pooled.flatten(1)), rtol=0, atol=0)
