"""Cascade R-CNN: train/eval steps, cascade facts, raw outputs and post-processing."""

import pytest
import torch

from o365lib.modeling import BOX_WEIGHTS, IOU_THRESHOLDS, CascadeRCNN, DeformableConv2d, build_detector


def _batch(num_images=2, size=128, labels=(3, 200)):
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=generator) for _ in range(num_images)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 64.0, 120.0, 100.0]]),
            "labels": torch.tensor(labels),
        }
        for _ in range(num_images)
    ]
    targets[-1] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}  # no objects
    return images, targets


LOSS_KEYS = {
    "loss_objectness",
    "loss_rpn_box_reg",
    *(f"loss_{kind}_s{stage}" for kind in ("cls", "box") for stage in range(3)),
}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backbone": "tiny"},
        {
            "backbone": "resnet18",
            "min_size": 128,
            "max_size": 128,
            "fpn_channels": 64,
            "representation_size": 128,
        },
    ],
    ids=["tiny", "resnet18"],
)
def test_train_and_eval_step_365_classes(kwargs):
    torch.manual_seed(0)
    model = build_detector(365, **kwargs)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS
    total = sum(losses.values())
    assert torch.isfinite(total)
    # untrained classifier: cross-entropy of stage 1 is about log(366) = 5.90 (stage weight 1.0)
    assert losses["loss_cls_s0"].item() == pytest.approx(5.90, abs=0.1)
    assert losses["loss_cls_s1"].item() == pytest.approx(5.90 * 0.5, abs=0.1)
    total.backward()
    head = model.roi_heads.stages[2].box_predictor.cls_score.weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    model.eval()
    model.score_thresh = 0.0
    outputs = model(images)
    assert len(outputs) == 2
    for output in outputs:
        assert set(output) == {"boxes", "labels", "scores"}
        assert output["boxes"].shape == (100, 4)
        assert int(output["labels"].min()) >= 1 and int(output["labels"].max()) <= 365
        assert bool((output["scores"][:-1] >= output["scores"][1:]).all())


def test_cascade_stage_facts():
    model = build_detector(20)
    stages = model.roi_heads.stages
    assert len(stages) == 3
    assert [s.proposal_matcher.high_threshold for s in stages] == list(IOU_THRESHOLDS) == [0.5, 0.6, 0.7]
    assert [s.proposal_matcher.low_threshold for s in stages] == [0.5, 0.6, 0.7]
    assert [tuple(s.box_coder.weights) for s in stages] == list(BOX_WEIGHTS)
    assert BOX_WEIGHTS[2] == (30.0, 30.0, 15.0, 15.0)
    assert model.roi_heads.stage_loss_weights == (1.0, 0.5, 0.25)
    for stage in stages:  # class-agnostic regression: 4 outputs, K+1 scores
        assert stage.box_predictor.bbox_pred.out_features == 4
        assert stage.box_predictor.cls_score.out_features == 21
    # each stage has its own head
    assert stages[0].box_head.fc6.weight.data_ptr() != stages[1].box_head.fc6.weight.data_ptr()
    assert model.transform.min_size == (128,) and model.num_classes == 20


def test_scores_are_mean_of_stage_probabilities_and_boxes_from_last_stage():
    torch.manual_seed(0)
    model = build_detector(2).eval()
    biases = [torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 0.0]), torch.tensor([3.0, 0.0, -1.0])]
    for stage, bias in zip(model.roi_heads.stages, biases):
        torch.nn.init.zeros_(stage.box_predictor.cls_score.weight)
        stage.box_predictor.cls_score.bias.data.copy_(bias)
        torch.nn.init.zeros_(stage.box_predictor.bbox_pred.weight)
        torch.nn.init.zeros_(stage.box_predictor.bbox_pred.bias)
    # the last stage shifts every box right by 0.1 * width (dx / weight 30 = 3/30)
    model.roi_heads.stages[2].box_predictor.bbox_pred.bias.data.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))
    image = torch.rand(3, 128, 128)
    raw = model.predict_raw([image])[0]
    expected = torch.stack([torch.softmax(b, 0) for b in biases]).mean(0)[1:]
    assert raw["scores"].shape[1] == 2
    torch.testing.assert_close(raw["scores"], expected.expand_as(raw["scores"]))
    assert expected.tolist() == pytest.approx([0.2082, 0.3386], abs=1e-4)
    # compare with the RPN proposals in this image's coordinates
    image_list, _ = model.transform([image])
    features = model.backbone(image_list.tensors)
    proposals, _ = model.rpn(image_list, features)
    shifted = proposals[0].clone()
    width = shifted[:, 2] - shifted[:, 0]
    shifted[:, 0::2] += 0.1 * width[:, None]
    shifted[:, 0::2] = shifted[:, 0::2].clamp(max=128)
    torch.testing.assert_close(raw["boxes"], shifted, atol=1e-3, rtol=0)


def test_predict_raw_uses_original_image_coordinates():
    torch.manual_seed(0)
    model = build_detector(5).eval()
    model.score_thresh = 0.0
    image = torch.rand(3, 64, 96)  # upscaled to 128x192 inside, boxes mapped back
    raw = model.predict_raw([image])[0]
    assert raw["boxes"].shape[0] == raw["scores"].shape[0] > 0
    assert float(raw["boxes"][:, 2].max()) <= 96 and float(raw["boxes"][:, 3].max()) <= 64
    assert float(raw["boxes"][:, 2].max()) > 64  # not squeezed into the smaller side
    out = model([image])[0]
    again = model.postprocess_raw(raw["boxes"], raw["scores"], (64, 96))
    torch.testing.assert_close(out["boxes"], again["boxes"])
    torch.testing.assert_close(out["scores"], again["scores"])


def _postprocess_model():
    model = build_detector(3).eval()
    model.score_thresh = 0.05
    model.nms_thresh = 0.5
    return model


def test_postprocess_raw_nms_threshold_and_topk():
    model = _postprocess_model()
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([[0.9, 0.0, 0.6], [0.8, 0.01, 0.0], [0.1, 0.04, 0.3]])
    out = model.postprocess_raw(boxes, scores, (100, 100))
    # class 1: box 1 suppressed by box 0 (IoU 0.82); class 2 only below threshold; class 3: boxes 0 and 2
    assert out["labels"].tolist() == [1, 3, 3, 1]
    assert out["scores"].tolist() == pytest.approx([0.9, 0.6, 0.3, 0.1])
    model.detections_per_img = 2
    assert model.postprocess_raw(boxes, scores, (100, 100))["labels"].tolist() == [1, 3]
    out = model.postprocess_raw(boxes * 20, scores, (100, 100))  # clipped to the image
    assert float(out["boxes"].max()) <= 100


def test_postprocess_raw_soft_nms_calls_the_shared_op(monkeypatch):
    calls = {}

    def fake_soft_nms(boxes, scores, labels, *, iou_threshold, sigma, method, score_threshold):
        calls.update(iou=iou_threshold, sigma=sigma, method=method, thr=score_threshold, n=len(scores))
        keep = torch.arange(len(scores))
        return keep, scores * torch.linspace(1.0, 0.5, len(scores))

    import o365lib.modeling.detector

    monkeypatch.setattr(o365lib.modeling.detector, "soft_nms", fake_soft_nms)
    model = _postprocess_model()
    model.nms_method = "soft_nms"
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]])
    scores = torch.tensor([[0.9, 0.0, 0.0], [0.8, 0.0, 0.0]])
    out = model.postprocess_raw(boxes, scores, (100, 100))
    assert calls == {"iou": 0.5, "sigma": 0.5, "method": "gaussian", "thr": 0.05, "n": 2}
    assert out["scores"].tolist() == pytest.approx([0.9, 0.4])
    model.nms_method = "bogus"
    with pytest.raises(ValueError, match="nms_method"):
        model.postprocess_raw(boxes, scores, (100, 100))


def test_dcn_starts_identical_to_plain_network():
    torch.manual_seed(0)
    plain = build_detector(4).eval()
    deformable = build_detector(4, dcn=True).eval()
    assert sum(isinstance(m, DeformableConv2d) for m in deformable.modules()) == 4  # c3-c5 blocks
    missing = deformable.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all("conv_offset" in k for k in missing)
    plain.score_thresh = deformable.score_thresh = 0.0
    image = torch.rand(3, 128, 128)
    a, b = plain.predict_raw([image])[0], deformable.predict_raw([image])[0]
    torch.testing.assert_close(a["scores"], b["scores"], atol=1e-4, rtol=1e-4)
    deformable.train()
    images, targets = _batch(labels=(1, 4))
    losses = deformable(images, targets)
    sum(losses.values()).backward()
    offset = next(m for m in deformable.modules() if isinstance(m, DeformableConv2d)).conv_offset
    assert offset.weight.grad is not None


def test_resnet_dcn_builds():
    model = build_detector(3, backbone="resnet50", dcn=True, fpn_channels=32, min_size=64, max_size=64)
    assert isinstance(model, CascadeRCNN)
    assert sum(isinstance(m, DeformableConv2d) for m in model.modules()) == 4 + 6 + 3
    assert model.config["norm"] == "gn"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_detector(3, backbone="vgg16")
    with pytest.raises(ValueError, match="num_classes"):
        build_detector(0)
    model = build_detector(3).train()
    images, _ = _batch(1)
    with pytest.raises(ValueError, match="zero or negative width"):
        model(images, [{"boxes": torch.tensor([[5.0, 5.0, 5.0, 9.0]]), "labels": torch.tensor([1])}])
    with pytest.raises(ValueError, match="targets"):
        model(images)
    with pytest.raises(ValueError, match=r"labels must be in 1..3, got \[0, 4\]"):
        model(
            images, [{"boxes": torch.tensor([[0.0, 0, 9, 9], [1, 1, 5, 5]]), "labels": torch.tensor([4, 0])}]
        )


def test_bf16_autocast_keeps_heads_and_proposals_float32():
    torch.manual_seed(0)
    model = build_detector(5)
    images, targets = _batch(labels=(1, 5))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        losses = model.train()(images, targets)
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
        model.eval()
        image_list, _ = model.transform(images)
        features = model.backbone(image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
        raw = model.predict_raw(images)
    assert proposals[0].dtype == torch.float32
    assert raw[0]["boxes"].dtype == torch.float32 and raw[0]["scores"].dtype == torch.float32


def test_max_candidates_keeps_the_highest_scores():
    model = _postprocess_model()
    assert build_detector(3).max_candidates == 1000
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [80.0, 0.0, 90.0, 10.0]])
    scores = torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.5]])
    model.max_candidates = 2
    out = model.postprocess_raw(boxes, scores, (100, 100))
    assert out["labels"].tolist() == [1, 3] and out["scores"].tolist() == pytest.approx([0.9, 0.5])
