"""Cascade R-CNN on CUDA: bf16-autocast train steps with finite losses and gradients, inference
outputs, and fp32 CUDA numbers equal to CPU's for the same weights and proposals.

Skipped without a CUDA GPU (CI has none); ``bench/gpu_check.sh`` runs them on the GPU machine.
The checks are plain functions of the device so that their logic can be exercised on CPU too.
"""

import pytest
import torch

from o365lib.modeling import build_detector

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by bench/gpu_check.sh)"),
]

LOSS_KEYS = {
    "loss_objectness",
    "loss_rpn_box_reg",
    *(f"loss_{kind}_s{stage}" for kind in ("cls", "box") for stage in range(3)),
}
MODELS = {
    "tiny": {"backbone": "tiny"},
    # mmdet's cascade-rcnn_r50_fpn_1x settings (frozen BN, stem + c2 frozen) at a small size
    "resnet50": {
        "backbone": "resnet50",
        "norm": "frozen_bn",
        "trainable_layers": 3,
        "min_size": 256,
        "max_size": 256,
    },
}


def _batch(device, *, num_images=2, size=128):
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=generator).to(device) for _ in range(num_images)]
    scale = size / 128
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 64.0, 120.0, 100.0]], device=device)
            * scale,
            "labels": torch.tensor([3, 200], device=device),
        }
        for _ in range(num_images)
    ]
    targets[-1] = {
        "boxes": torch.zeros((0, 4), device=device),
        "labels": torch.zeros((0,), dtype=torch.int64, device=device),
    }
    return images, targets


def check_bf16_train_step(device, model_name):
    """One SGD step under bf16 autocast: the losses, the gradients and the new weights are finite."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_detector(365, **MODELS[model_name]).to(device)
    model.train()
    images, targets = _batch(device, size=256 if model_name == "resnet50" else 128)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        losses = model(images, targets)
    assert set(losses) == LOSS_KEYS
    for name, value in losses.items():
        assert value.device.type == device.type, name
        assert torch.isfinite(value).all(), f"{name} = {value}"
    if model_name == "tiny":  # near-uniform initial classifier: stage-1 cross-entropy about log(366) = 5.90
        assert losses["loss_cls_s0"].item() == pytest.approx(5.90, abs=0.15)
        assert losses["loss_cls_s1"].item() == pytest.approx(5.90 * 0.5, abs=0.1)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    head = model.roi_heads.stages[2].box_predictor.cls_score.weight
    assert head.grad.abs().sum() > 0
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return model, images


def check_bf16_inference(device, model_name):
    """Eval under bf16 autocast: 100 float32 detections per image on the device, sorted, in range."""
    model, images = check_bf16_train_step(device, model_name)
    model.eval()
    model.score_thresh = 0.0
    with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        outputs = model(images)
    assert len(outputs) == len(images)
    height, width = images[0].shape[-2:]
    for output in outputs:
        assert set(output) == {"boxes", "labels", "scores"}
        assert output["boxes"].shape == (100, 4) and output["boxes"].dtype == torch.float32
        assert output["boxes"].device.type == torch.device(device).type
        assert torch.isfinite(output["boxes"]).all() and torch.isfinite(output["scores"]).all()
        boxes = output["boxes"]
        assert bool(
            (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        )
        assert 1 <= int(output["labels"].min()) and int(output["labels"].max()) <= 365
        assert bool((output["scores"][:-1] >= output["scores"][1:]).all())


def check_fp32_matches_cpu(device):
    """fp32 on ``device`` (TF32 off) gives CPU's features, and CPU's boxes and probabilities for
    CPU's proposals (the proposals are shared so that NMS ties cannot change the compared set)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_detector(365, backbone="tiny").eval()
    images, _ = _batch("cpu", num_images=2)
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            image_list, _ = model.transform(images, None)
            features = model.backbone(image_list.tensors)
            proposals, _ = model.rpn(image_list, features, None)
            boxes, probabilities = model.roi_heads.forward_test(features, proposals, image_list.image_sizes)
            model.to(device)
            image_list_d, _ = model.transform([im.to(device) for im in images], None)
            features_d = model.backbone(image_list_d.tensors)
            boxes_d, probabilities_d = model.roi_heads.forward_test(
                features_d, [p.to(device) for p in proposals], image_list_d.image_sizes
            )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    assert image_list_d.image_sizes == image_list.image_sizes
    for name, value in features.items():
        scale = float(value.abs().max())
        torch.testing.assert_close(features_d[name].cpu(), value, rtol=1e-4, atol=1e-4 * scale)
    for a, b in zip(boxes_d, boxes):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-2)  # pixels
    for a, b in zip(probabilities_d, probabilities):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_cuda_bf16_train_step_finite(model_name):
    check_bf16_train_step("cuda", model_name)


def test_cuda_bf16_inference_outputs():
    check_bf16_inference("cuda", "tiny")


def test_cuda_fp32_matches_cpu():
    check_fp32_matches_cpu("cuda")
