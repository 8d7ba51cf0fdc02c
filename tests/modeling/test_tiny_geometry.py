"""The tiny preset's geometry covers the generated objects (7-92 px sides in 128 px images).

With anchors of about one stride on c3-c5 only, a third of the boxes had no anchor of IoU >= 0.5
and objects over ~56 px were never detected (every "large, plain" class scored AP 0). These tests
pin the properties the preset now has: an anchor of IoU >= 0.5 for nearly every object, and RoIs
pooled on the level where a box is about 8 strides wide.
"""

import numpy as np
import torch
from torchvision.ops import box_iou

from o365lib.modeling import build_detector


def _tiny():
    return build_detector(5, backbone="tiny", min_size=128, max_size=192).eval()


def _random_boxes(rng, lo, hi, n=400, size=128):
    sides = np.exp(rng.uniform(np.log(lo), np.log(hi), size=(n, 2)))
    xy = rng.uniform(0, 1, size=(n, 2)) * (size - sides)
    return torch.tensor(np.concatenate([xy, xy + sides], axis=1), dtype=torch.float32)


def test_every_object_size_has_a_matching_anchor():
    model = _tiny()
    image = torch.zeros(3, 128, 128)
    with torch.no_grad():
        images, _ = model.transform([image])
        features = list(model.backbone(images.tensors).values())
        anchors = model.rpn.anchor_generator(images, features)[0]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]  # strides 4..64
    rng = np.random.default_rng(0)
    for lo, hi in ((7, 12), (14, 44), (56, 92)):  # the generator's small / normal / large styles
        best = box_iou(_random_boxes(rng, lo, hi), anchors).max(dim=1).values
        assert float((best >= 0.5).float().mean()) >= 0.9, (lo, hi, float((best >= 0.5).float().mean()))


def test_rois_pool_on_the_level_of_their_size():
    model = _tiny()
    pool = model.roi_heads.stages[0].box_roi_pool
    image = torch.zeros(3, 128, 128)
    with torch.no_grad():
        images, _ = model.transform([image])
        features = model.backbone(images.tensors)
    from torchvision.ops.poolers import _setup_scales

    kept = [features[name] for name in pool.featmap_names]
    _, mapper = _setup_scales(kept, images.image_sizes, pool.canonical_scale, pool.canonical_level)
    boxes = torch.tensor([[0, 0, 20, 20], [0, 0, 40, 40], [0, 0, 90, 90]], dtype=torch.float32)
    assert mapper([boxes]).tolist() == [0, 1, 2]  # stride 4, 8, 16
