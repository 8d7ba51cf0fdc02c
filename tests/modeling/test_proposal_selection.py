"""The RPN's proposal selection: the early-stopping NMS keeps exactly what torchvision's keeps."""

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import batched_nms

from o365lib.modeling.box_coding import leading_nms
from o365lib.modeling.proposals import ProposalNetwork

LEVELS = [1536, 384, 96, 24, 6]  # anchors per FPN level of a 128 x 192 image, 3 per location


def _clustered_boxes(count: int, *, generator, dtype=torch.float32, ties: bool = False):
    """Boxes in clusters (so NMS suppresses many of them) and scores; ``ties``: scores on a coarse grid."""
    centres = torch.rand(max(1, count // 8), 2, generator=generator) * 180
    pick = torch.randint(0, centres.shape[0], (count,), generator=generator)
    centre = centres[pick] + torch.randn(count, 2, generator=generator) * 3
    size = torch.rand(count, 2, generator=generator) * 40 + 4
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1).to(dtype)
    scores = torch.rand(count, generator=generator, dtype=torch.float64).to(dtype)
    if ties:
        scores = (scores * 16).round() / 16
    return boxes, scores


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16: the RPN's boxes under autocast
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("count", [1, 37, 100, 5000])
def test_leading_nms_is_batched_nms_cut_to_count(count, ties, dtype):
    generator = torch.Generator().manual_seed(count)
    boxes, scores = _clustered_boxes(750, generator=generator, ties=ties, dtype=dtype)
    groups = torch.randint(0, 5, (750,), generator=generator)
    # torchvision's coordinate-offset path below 1,000 boxes, on the boxes in float32 (bf16 boxes are offset in
    # float32 by leading_nms; torchvision would offset them in bf16, rounding the shifted boxes)
    expected = batched_nms(boxes.float(), scores.float(), groups, 0.7)[:count]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        got = leading_nms(boxes, scores, groups, 0.7, count=count)
    assert torch.equal(got, expected)


def test_leading_nms_in_float64_and_on_nothing():
    generator = torch.Generator().manual_seed(3)
    boxes, scores = _clustered_boxes(300, generator=generator, dtype=torch.float64)
    groups = torch.zeros(300, dtype=torch.int64)
    assert torch.equal(leading_nms(boxes, scores, groups, 0.5, count=50), batched_nms(boxes, scores, groups, 0.5)[:50])
    empty = leading_nms(boxes[:0], scores[:0], groups[:0], 0.5, count=50)
    assert empty.dtype == torch.int64 and empty.numel() == 0


def _networks(pre_nms, post_nms):
    torch.manual_seed(0)
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)
    kwargs = {"fg_iou_thresh": 0.7, "bg_iou_thresh": 0.3, "batch_size_per_image": 256, "positive_fraction": 0.5,
              "pre_nms_top_n": pre_nms, "post_nms_top_n": post_nms, "nms_thresh": 0.7}
    ours = ProposalNetwork(anchors, RPNHead(8, 3), **kwargs)
    return ours, RegionProposalNetwork(anchors, RPNHead(8, 3), **kwargs)


@pytest.mark.parametrize("training", [True, False])
def test_proposals_equal_torchvision_selection(training):
    """Training: 150 per level, 750 boxes, torchvision's offset path: identical. Inference: 300 per level,
    1,500 boxes, where torchvision loops over levels instead: identical here too."""
    ours, reference = _networks({"training": 150, "testing": 300}, {"training": 100, "testing": 100})
    ours.train(training), reference.train(training)
    generator = torch.Generator().manual_seed(7)
    images, total = 4, sum(LEVELS)
    proposals = torch.stack([_clustered_boxes(total, generator=generator)[0] for _ in range(images)])
    objectness = torch.randn(images * total, 1, generator=generator)
    shapes = [(128, 192), (128, 170), (100, 192), (128, 192)]
    got = ours.filter_proposals(proposals, objectness, shapes, LEVELS)
    expected = reference.filter_proposals(proposals, objectness, shapes, LEVELS)
    for ours_part, reference_part in zip(got, expected):
        for a, b in zip(ours_part, reference_part):
            assert a.shape[0] == 100
            assert torch.equal(a, b)
