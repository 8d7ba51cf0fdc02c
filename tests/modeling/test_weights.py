"""Loading backbone and full-model weights from local files, with clear errors."""

import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from o365lib.modeling import build_detector
from o365lib.modeling.backbones import build_body


def _params_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_full_model_weights_raw_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = build_detector(7)
    raw, checkpoint = tmp_path / "raw.pt", tmp_path / "ckpt.pt"
    torch.save(source.state_dict(), raw)
    torch.save({"model": source.state_dict(), "iteration": 3}, checkpoint)
    torch.manual_seed(1)
    assert not _params_equal(source, build_detector(7))
    assert _params_equal(source, build_detector(7, weights=raw))
    assert _params_equal(source, build_detector(7, weights=checkpoint))


def test_full_model_weight_errors_name_the_file(tmp_path):
    torch.save(build_detector(7).state_dict(), tmp_path / "seven.pt")
    with pytest.raises(ValueError, match=r"(?s)seven\.pt does not fit this model.*cls_score"):
        build_detector(9, weights=tmp_path / "seven.pt")
    with pytest.raises(
        ValueError, match=r"seven\.pt does not match this model: missing keys \[.*conv_offset"
    ):
        build_detector(7, dcn=True, weights=tmp_path / "seven.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read weights file .*junk\.pt"):
        build_detector(7, weights=tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match=r"nothere\.pt"):
        build_detector(7, weights=tmp_path / "nothere.pt")
    torch.save({"model": {"a": 1}}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"odd\.pt does not hold a state dict"):
        build_detector(7, weights=tmp_path / "odd.pt")


def test_backbone_weights_imagenet_style_file(tmp_path):
    torch.manual_seed(0)
    body, _ = build_body("resnet18", norm="bn", dcn=False)
    state = body.state_dict()
    state["fc.weight"], state["fc.bias"] = (
        torch.zeros(1000, 512),
        torch.zeros(1000),
    )  # like torchvision's file
    torch.save(state, tmp_path / "resnet18-imagenet.pth")
    model = build_detector(
        3, backbone="resnet18", dcn=True, backbone_weights=tmp_path / "resnet18-imagenet.pth"
    )
    loaded = model.backbone.body
    assert torch.equal(loaded.conv1.weight, body.conv1.weight)
    assert torch.equal(loaded.layer3[1].conv2.weight, body.layer3[1].conv2.weight)  # deformable twin
    assert torch.equal(loaded.bn1.running_var, body.bn1.running_var)
    assert isinstance(loaded.bn1, FrozenBatchNorm2d) and model.config["norm"] == "frozen_bn"
    # pretrained: stem and c2 frozen, c3-c5 trainable
    assert not loaded.conv1.weight.requires_grad and not loaded.layer1[0].conv1.weight.requires_grad
    assert loaded.layer2[0].conv1.weight.requires_grad


def test_backbone_weights_mismatch_names_file(tmp_path):
    body, _ = build_body("resnet18", norm="bn", dcn=False)
    torch.save(body.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"r18\.pth do not (fit|match) the backbone"):
        build_detector(3, backbone="tiny", backbone_weights=tmp_path / "r18.pth")
    partial = {k: v for k, v in body.state_dict().items() if not k.startswith("layer4")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth do not match the backbone: missing keys \['layer4"):
        build_detector(3, backbone="resnet18", backbone_weights=tmp_path / "partial.pth")


def test_fused_frozen_batch_norm_matches_torchvision():
    from o365lib.modeling.backbones import FusedFrozenBatchNorm2d

    torch.manual_seed(0)
    reference, fused = FrozenBatchNorm2d(8), FusedFrozenBatchNorm2d(8)
    for name in ("weight", "bias", "running_mean"):
        getattr(reference, name).copy_(torch.randn(8))
    reference.running_var.copy_(torch.rand(8) + 0.5)
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    torch.testing.assert_close(fused(x), reference(x))
    (grad_fused,) = torch.autograd.grad(fused(x).sum(), x)
    (grad_reference,) = torch.autograd.grad(reference(x).sum(), x)
    torch.testing.assert_close(grad_fused, grad_reference)
    assert not any(p.requires_grad for p in fused.parameters())
