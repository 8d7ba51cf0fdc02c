"""One inference loop: ``predict`` and ``predict_tta`` batch, order and restore the model alike."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from o365lib.engine import precision, predict
from o365lib.engine.inference import image_batches, inference_session
from o365lib.tta import predict_tta


class LabelMap:
    def to_category(self, label):
        return 100 + int(label)


class Images:
    """Five 32x40 images; image ``i`` is constant ``i / 10`` so a batch's ids can be read off it."""

    label_map = LabelMap()

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return torch.full((3, 32, 40), i / 10), {"image_id": torch.tensor(20 + i)}


class Recorder(nn.Module):
    """Records each forward's batch (as image indices) and the grad mode it ran in."""

    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.transform = type("T", (), {"min_size": (32,), "max_size": 1000})()
        self.batches, self.inference_mode, self.autocast, self.fail_at = [], [], [], fail_at
        self.score_thresh, self.detections_per_img = 0.05, 100

    def forward(self, images):
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            raise RuntimeError("boom")
        self.batches.append([round(float(im[0, 0, 0]) * 10) for im in images])
        self.inference_mode.append(torch.is_inference_mode_enabled())
        self.autocast.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return [{"boxes": torch.tensor([[1.0, 2.0, 11.0, 12.0]]), "labels": torch.tensor([1]),
                 "scores": torch.tensor([0.5])} for _ in images]


def test_image_batches_are_in_dataset_order_with_a_short_last_batch():
    batches = list(image_batches(Images(), batch_size=2, device="cpu"))
    assert [ids for _, ids in batches] == [[20, 21], [22, 23], [24]]
    assert all(isinstance(i, int) for _, ids in batches for i in ids)


@pytest.mark.parametrize("run", ["predict", "predict_tta"])
def test_both_entry_points_run_the_same_loop(run):
    model = Recorder().train()
    if run == "predict":
        results = predict(model, Images(), batch_size=2)
    else:
        results = predict_tta(model, Images(), scales=[32], flip=False, merge="nms", batch_size=2)
    assert model.batches == [[0, 1], [2, 3], [4]]
    assert all(model.inference_mode)
    assert model.training  # restored
    assert [r["image_id"] for r in results] == [20, 21, 22, 23, 24]
    assert {r["category_id"] for r in results} == {101}


@pytest.mark.parametrize("run", ["predict", "predict_tta"])
def test_the_model_is_restored_when_a_batch_fails(run):
    model = Recorder(fail_at=1).train()
    with pytest.raises(RuntimeError, match="boom"):
        if run == "predict":
            predict(model, Images(), batch_size=2, score_threshold=0.3, max_dets=7)
        else:
            predict_tta(model, Images(), scales=[32], flip=False, merge="nms", batch_size=2)
    assert model.training and not torch.is_inference_mode_enabled()
    assert (model.score_thresh, model.detections_per_img) == (0.05, 100)


def test_inference_session_restores_eval_mode_too():
    model = Recorder().eval()
    with inference_session(model, device="cpu"):
        assert torch.is_inference_mode_enabled() and not model.training
    assert not model.training and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("run", ["predict", "predict_tta"])
@pytest.mark.parametrize(("amp", "native", "expected"), [
    ("bf16", True, torch.bfloat16),  # the default profile's eval.amp on a CPU with bf16 instructions
    ("bf16", False, None),  # no avx512_bf16 / AMX: float32, as training does there
    (False, True, None),
    (True, True, None),  # on a CPU only "bf16" autocasts (CUDA takes any truthy value)
])
def test_predictions_autocast_as_training_does(monkeypatch, run, amp, native, expected):
    monkeypatch.setattr(precision, "cpu_bf16_is_native", lambda: native)
    model = Recorder()
    if run == "predict":
        predict(model, Images(), batch_size=2, amp=amp)
    else:
        predict_tta(model, Images(), scales=[32], flip=False, merge="nms", batch_size=2, amp=amp)
    assert model.autocast == [expected] * 3
    assert not torch.is_autocast_enabled("cpu")
