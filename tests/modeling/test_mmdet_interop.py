"""mmdet-exact parts and COCO-pretrained starts, on tiny tensors (no mmdet code involved)."""

import torch
from torchvision.models.detection.image_list import ImageList

from o365lib.modeling import (
    StridedAnchorGenerator,
    build_detector,
    init_detector_weights,
    match_category_names,
)
from o365lib.modeling.mmdet_keys import mmdet_to_ours, ours_to_mmdet
from o365lib.modeling.roi_align import SparseMultiScaleRoIAlign


def test_anchors_are_unrounded_at_exact_strides():
    generator = StridedAnchorGenerator(sizes=((32,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2, strides=(4, 64))
    images = ImageList(torch.zeros(1, 3, 480, 480), [(480, 480)])
    features = [torch.zeros(1, 1, 120, 120), torch.zeros(1, 1, 8, 8)]  # P6 of 480 px: ceil(480 / 64)
    anchors = generator(images, features)[0]
    assert abs(float(anchors[0, 2] - anchors[0, 0]) - 32 * 2**0.5) < 1e-4  # 45.2548..., not 46
    p6 = anchors[120 * 120 * 3:]
    assert float(p6[3, 0] - p6[0, 0]) == 64.0  # next position: stride 64, not 480 // 8 = 60


def test_roi_align_under_cpu_bf16_autocast():
    pool = SparseMultiScaleRoIAlign(["0", "1"], 7, 2)
    features = {"0": torch.randn(1, 8, 32, 32), "1": torch.randn(1, 8, 16, 16)}
    boxes = [torch.tensor([[2.0, 3.0, 40.0, 50.0], [10.0, 10.0, 120.0, 100.0]])]
    reference = pool(features, boxes, [(128, 128)])
    low = {k: v.to(torch.bfloat16) for k, v in features.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = pool(low, boxes, [(128, 128)])
    assert pooled.dtype == torch.bfloat16
    # pooled in float32 from bf16 inputs: only the inputs' and output's rounding remains
    assert float((pooled.float() - reference).abs().max()) < 0.05
    low_grad = {k: v.clone().requires_grad_(True) for k, v in low.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pool(low_grad, boxes, [(128, 128)]).float().sum().backward()
    assert low_grad["0"].grad is not None and low_grad["0"].grad.dtype == torch.bfloat16


def test_mmdet_key_round_trip_moves_background_last():
    model = build_detector(3, backbone="tiny", min_size=64, max_size=64)
    state = model.state_dict()
    mmdet = ours_to_mmdet(state)
    cls = mmdet["roi_head.bbox_head.0.fc_cls.bias"]
    assert torch.equal(cls[-1], state["roi_heads.stages.0.box_predictor.cls_score.bias"][0])
    assert "neck.lateral_convs.0.conv.weight" in mmdet and "rpn_head.rpn_cls.weight" in mmdet
    back = mmdet_to_ours(mmdet)
    kept = {k for k in state if not k.endswith("num_batches_tracked")}  # BN counters: mmdet-only
    assert set(back) == kept and all(torch.equal(back[k], state[k]) for k in kept)


def test_objects365_v2_spellings_match_coco_names():
    targets = ["Person", "Bakset", "Ballon", "Wild Bird", "Dinning Table", "Table Tennis ", "Moniter/TV"]
    matches = match_category_names(["person", "bird", "dining table", "tv", "sports ball"], targets)
    assert matches == {0: 0, 3: 1, 4: 2, 6: 3}
    assert match_category_names(["basket", "balloon"], ["Bakset", "Ballon"]) == {0: 0, 1: 1}


def test_coco_checkpoint_start_copies_named_rows(tmp_path):
    torch.manual_seed(0)
    coco_model = build_detector(80, backbone="tiny", min_size=64, max_size=64)
    path = tmp_path / "coco_mmdet.pth"
    torch.save({"meta": {}, "state_dict": ours_to_mmdet(coco_model.state_dict())}, path)  # no class names stored
    target_names = ["Car", "Sneakers", "Person", "Wild Bird", "Bakset"]
    torch.manual_seed(1)
    model = build_detector(len(target_names), backbone="tiny", min_size=64, max_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_detector_weights(model, path, target_categories=target_names)
    after, source = model.state_dict(), coco_model.state_dict()
    assert report["format"] == "mmdet"
    assert report["matched"] == {"Car": "car", "Person": "person", "Wild Bird": "bird"}
    key = "roi_heads.stages.2.box_predictor.cls_score.weight"
    assert report["classifier_rows"][key] == 3
    # rows: background 0; COCO labels car 3, person 1, bird 15 -> ours 1, 3, 4
    for ours, coco in ((0, 0), (1, 3), (3, 1), (4, 15)):
        assert torch.equal(after[key][ours], source[key][coco])
    assert torch.equal(after[key][2], before[key][2]) and torch.equal(after[key][5], before[key][5])
    assert torch.equal(after["backbone.body.stem.0.weight"], source["backbone.body.stem.0.weight"])
    assert not torch.equal(after["backbone.body.stem.0.weight"], before["backbone.body.stem.0.weight"])
