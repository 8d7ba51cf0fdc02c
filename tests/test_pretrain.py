"""o365lib.pretrain: balanced crop set and backbone pre-training."""

import numpy as np
import torch

from o365lib.modeling import build_detector
from o365lib.modeling.backbones import build_body
from o365lib.pretrain import pretrain_backbone, render_crops, save_backbone


def test_crops_are_balanced_and_deterministic():
    a, labels, cats = render_crops(num_per_class=2, size=32, seed=3)
    b, labels_b, _ = render_crops(num_per_class=2, size=32, seed=3)
    assert a.shape == (2 * 365, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(labels, labels_b)
    assert np.bincount(labels).tolist() == [2] * 365
    assert [c["id"] for c in cats] == sorted(c["id"] for c in cats)
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
