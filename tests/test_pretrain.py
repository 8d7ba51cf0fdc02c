"""o365lib.pretrain: balanced crop set of classes disjoint from the detection classes, and pre-training."""

import numpy as np
import torch

from o365lib.data.synthetic_plan import build_categories
from o365lib.data.synthetic_render import SHAPES
from o365lib.modeling import build_detector
from o365lib.modeling.backbones import build_body
from o365lib.pretrain import pretrain_backbone, pretrain_categories, render_crops, save_backbone


def test_pretraining_classes_are_disjoint_from_the_detection_classes():
    """The stand-in for ImageNet must not contain the detection label set (not even its shapes)."""
    pretrain = pretrain_categories()
    assert len(pretrain) == 384 and len({c["name"] for c in pretrain}) == 384
    assert [c["id"] for c in pretrain] == list(range(1, 385))
    for seed in (0, 1):
        detection, _ = build_categories(seed)
        assert not {c["name"] for c in pretrain} & {c["name"] for c in detection}
        assert not {c["shape"] for c in pretrain} & {c["shape"] for c in detection}
        compositions = {(c["shape"], c["colour"], c["texture"]) for c in detection}
        assert not compositions & {(c["shape"], c["colour"], c["texture"]) for c in pretrain}
    assert not {c["shape"] for c in pretrain} & set(SHAPES)
    # colours and textures are shared: that is what transfers
    assert {c["colour"] for c in pretrain} == {c["colour"] for c in detection}
    assert {c["texture"] for c in pretrain} == {c["texture"] for c in detection}


def test_crops_are_balanced_and_deterministic():
    a, labels, cats = render_crops(num_per_class=2, size=32, seed=3)
    b, labels_b, _ = render_crops(num_per_class=2, size=32, seed=3)
    assert a.shape == (2 * 384, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(labels, labels_b)
    assert np.bincount(labels).tolist() == [2] * 384
    assert cats == pretrain_categories()
    red = [i for i, c in enumerate(cats) if c["colour"] == "red" and c["texture"] == "solid"]
    crop = a[np.isin(labels, red)].reshape(-1, 3).astype(int)  # the object's colour is drawn
    assert ((crop[:, 0] > 170) & (crop[:, 1] < 70)).mean() > 0.05
    c, _, _ = render_crops(num_per_class=2, size=32, seed=4)
    assert not np.array_equal(a, c)


def test_pretraining_learns_and_weights_load_into_a_detector(tmp_path):
    torch.manual_seed(0)
    images, labels, _ = render_crops(num_per_class=6, size=32, seed=0)
    keep = labels < 8  # 8 classes keep the test fast
    body, channels = build_body("tiny", norm="bn", dcn=False)
    history = pretrain_backbone(body, images[keep], labels[keep], channels=channels[-1], epochs=8,
                                batch_size=16, lr=0.05, val_fraction=0.25, progress=False)
    assert np.mean(history["loss"][-3:]) < np.mean(history["loss"][:3])
    path = save_backbone(body, tmp_path / "backbone.pt")
    model = build_detector(3, backbone="tiny", min_size=64, max_size=64, backbone_weights=path)
    loaded = model.backbone.body.state_dict()
    for name, tensor in body.state_dict().items():
        assert torch.equal(loaded[name], tensor), name


def test_saving_the_same_backbone_twice_gives_the_same_bytes(tmp_path):
    """The content hash of a backbone file is part of every model key: equal tensors, equal bytes."""
    from torch import nn

    from o365lib.pretrain import save_backbone

    body = nn.Linear(3, 2)
    first, second = save_backbone(body, tmp_path / "a.pt"), save_backbone(body, tmp_path / "b.pt")
    assert first.read_bytes() == second.read_bytes()
