"""The cascade heads with each classification loss: a training step, inference, checkpoints."""

from __future__ import annotations

import pytest
import torch

from o365lib.modeling import build_detector
from o365lib.modeling.losses import NormedLinear

K = 5


def _batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 64, generator=generator) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 36.0], [20.0, 10.0, 60.0, 50.0]]),
                "labels": torch.tensor([1, 3])},
               {"boxes": torch.tensor([[10.0, 12.0, 30.0, 44.0]]), "labels": torch.tensor([5])}]
    return images, targets


@pytest.mark.parametrize("name", ["softmax", "seesaw", "eqlv2", "federated"])
def test_each_loss_trains_and_predicts(name):
    torch.manual_seed(0)
    extra = {"image_counts": [50, 20, 10, 5, 1]} if name == "federated" else {}
    model = build_detector(K, min_size=64, max_size=64, representation_size=32, box_batch_size_per_image=16,
                           class_loss=name, **extra)
    stage = model.roi_heads.stages[0]
    assert stage.class_loss.name == name
    assert stage.box_predictor.cls_score.out_features == stage.class_loss.num_outputs
    assert isinstance(stage.box_predictor.cls_score, NormedLinear) == (name == "seesaw")
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grad = stage.box_predictor.cls_score.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.eval()
    model.score_thresh = 0.0
    raw = model.predict_raw(images)
    assert raw[0]["scores"].shape[1] == K and (raw[0]["scores"] >= 0).all() and (raw[0]["scores"] <= 1).all()
    output = model(images)
    assert set(output[0]) == {"boxes", "labels", "scores"}
    restored = build_detector(K, min_size=64, max_size=64, representation_size=32, box_batch_size_per_image=16,
                              class_loss=name, **extra)
    restored.load_state_dict(model.state_dict())  # the loss state (counts, gradient statistics) is saved


def test_score_calibration_reranks_before_the_cap():
    torch.manual_seed(0)
    model = build_detector(K, min_size=64, max_size=64, representation_size=32).eval()
    images, _ = _batch()
    plain = model.predict_raw(images)[0]["scores"]
    model.score_calibration = lambda p: torch.cat([p[:, :1], p[:, 1:] * torch.arange(1.0, K + 1)], 1)
    scaled = model.predict_raw(images)[0]["scores"]
    assert torch.allclose(scaled, plain * torch.arange(1.0, K + 1))
