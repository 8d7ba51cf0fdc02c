"""Parity with mmdet 3.3.0's own Cascade R-CNN inference (the reference, run from its code).

mmdet's model is built from the config files it ships, with random weights under a fixed seed and
365 classes (tests/support/mmdet_reference.py says how the weights are drawn so that detections
exist and scores do not saturate). Its checkpoint is loaded with ``load_mmdet_checkpoint`` and both
run on the same two non-square images (320 x 480 and 256 x 416, one padded batch). Compared: RPN
proposals (ordered by score; boxes with exactly equal scores may swap, since mmcv's compiled nms
sorts unstably), final boxes (0.01 px), scores (1e-4) and labels (exact), detections
paired as sets. Measured here: every difference 0.0 px for boxes and proposals, scores within
3e-8 (R-50 and X-101-32x4d); the round trip through ``save_mmdet_checkpoint`` loads back into mmdet
bit-exactly. The DCN case (mmdet's dconv-c3-c5 R-50, offset convolutions with random non-zero
weights so that offsets are a few pixels) runs on smaller images (256 x 384 and 224 x 352).
"""

import pytest
import torch

from o365lib.modeling import load_mmdet_checkpoint, save_mmdet_checkpoint
from tests.support.mmdet_reference import (
    build_mmdet_cascade,
    compare_proposals,
    match_detections,
    mmdet_predict,
    ours_predict,
)

NUM_CLASSES = 365


def _images() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    shapes = [(3, 320, 480), (3, 256, 416)]
    return [torch.randint(0, 256, shape, generator=generator).float() / 255 for shape in shapes]


def _compare(reference_outputs, ours, images):
    ref_rpn, ref_det = reference_outputs
    our_rpn, our_det = ours_predict(ours, images)
    report = []
    for index in range(len(images)):
        proposals = compare_proposals(ref_rpn[index], our_rpn[index])
        assert proposals["same_count"], f"image {index}: proposal counts differ"
        assert proposals["rows_differing_untied"] == 0, proposals  # only equal scores may swap
        rpn_diff = proposals["set_max_diff"]
        match = match_detections(ref_det[index], our_det[index])
        assert match["reference"] > 10, "the random weights must give detections to compare"
        assert float(ref_det[index]["scores"].max()) < 0.9, "scores must not saturate"
        report.append({"rpn_max_diff": rpn_diff, **match})
    return report


def _assert_parity(report):
    for entry in report:
        assert entry["rpn_max_diff"] <= 0.01, entry
        assert entry["unmatched"] == 0, entry
        assert entry["labels_equal"], entry
        assert entry["max_box_diff"] <= 0.01, entry
        assert entry["max_score_diff"] <= 1e-4, entry


@pytest.fixture(scope="module")
def r50(mmcv_ext, tmp_path_factory):
    reference = build_mmdet_cascade("r50", num_classes=NUM_CLASSES, seed=0)
    path = tmp_path_factory.mktemp("mmdet") / "cascade_r50.pth"
    torch.save(
        {
            "meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(NUM_CLASSES)]}},
            "state_dict": reference.state_dict(),
        },
        path,
    )
    ours = load_mmdet_checkpoint(path)
    ours.transform.resize_images = False  # mmdet's side gets the images unresized too
    return reference, ours, path, mmdet_predict(reference, _images())


def test_r50_matches_mmdet(r50):
    _, ours, _, outputs = r50
    assert not ours.training and ours.num_classes == NUM_CLASSES and ours.class_names[0] == "c0"
    _assert_parity(_compare(outputs, ours, _images()))


def test_torchvision_defaults_are_not_mmdet(r50):
    """Negative control: torchvision's rounded anchors change the proposals."""
    _, _, path, (ref_rpn, _) = r50
    images = _images()[:1]
    changed = load_mmdet_checkpoint(path)
    changed.transform.resize_images = False
    changed.rpn.anchor_generator.round_base_anchors = True
    changed.rpn.anchor_generator.cell_anchors = [
        changed.rpn.anchor_generator.generate_anchors(list(s), list(a))
        for s, a in zip(changed.rpn.anchor_generator.sizes, changed.rpn.anchor_generator.aspect_ratios)
    ]
    our_rpn, _ = ours_predict(changed, images)
    assert float((ref_rpn[0]["boxes"] - our_rpn[0]["boxes"]).abs().max()) > 0.01


def test_probability_average_differs_from_mmdet(r50):
    _, ours, _, (_, ref_det) = r50
    images = _images()[:1]
    ours.roi_heads.stage_score_average = "probabilities"
    try:
        _, our_det = ours_predict(ours, images)
    finally:
        ours.roi_heads.stage_score_average = "logits"
    match = match_detections(ref_det[0], our_det[0])
    assert match["max_score_diff"] > 1e-3 or match["unmatched"] > 0


def test_round_trip_through_save_mmdet_checkpoint(r50, tmp_path):
    reference, ours, _, _ = r50
    path = save_mmdet_checkpoint(ours, tmp_path / "ours_as_mmdet.pth")
    checkpoint = torch.load(path, weights_only=True)
    original = reference.state_dict()
    assert set(checkpoint["state_dict"]) == set(original)
    for key, value in original.items():
        assert torch.equal(checkpoint["state_dict"][key], value), key
    again = load_mmdet_checkpoint(path)
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_resnext_32x4d_matches_mmdet(mmcv_ext, tmp_path):
    reference = build_mmdet_cascade("x101-32x4d", num_classes=NUM_CLASSES, seed=1)
    path = tmp_path / "cascade_x101_32x4d.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    ours = load_mmdet_checkpoint(path, num_classes=NUM_CLASSES)
    assert ours.config["backbone"] == "resnext101_32x4d"
    ours.transform.resize_images = False
    _assert_parity(_compare(mmdet_predict(reference, _images()), ours, _images()))


def _small_images() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    shapes = [(3, 256, 384), (3, 224, 352)]
    return [torch.randint(0, 256, shape, generator=generator).float() / 255 for shape in shapes]


def test_dcn_r50_matches_mmdet(mmcv_ext, tmp_path):
    """mmdet's dconv-c3-c5 R-50 (mmcv ``DCN``, deform_groups=1) with non-zero offset weights."""
    reference = build_mmdet_cascade("r50", num_classes=NUM_CLASSES, seed=3, dcn=True)
    assert type(reference.backbone.layer2[0].conv2).__name__ == "DeformConv2dPack"
    offsets = []
    hooks = [
        module.register_forward_hook(lambda module, args, output: offsets.append(output.abs().mean()))
        for name, module in reference.named_modules()
        if name.endswith("conv_offset")
    ]
    try:
        outputs = mmdet_predict(reference, _small_images())
    finally:
        for hook in hooks:
            hook.remove()
    assert len(offsets) == 13 and float(max(offsets)) > 1.0, "offsets must move the sampling by pixels"
    path = tmp_path / "cascade_r50_dconv.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    ours = load_mmdet_checkpoint(path, num_classes=NUM_CLASSES)
    assert ours.config["dcn"] and ours.mmdet_config.endswith("_dconv-c3-c5")
    ours.transform.resize_images = False
    _assert_parity(_compare(outputs, ours, _small_images()))
