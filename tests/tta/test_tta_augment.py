"""predict_tta with a tiny fake detector: flip mapping, scale invariance, raw merging, restore."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from o365lib.tta import flip_boxes, inference_scale, predict_tta, resolve_scales

TRUE_BOX = [8.0, 16.0, 40.0, 48.0]  # x1, y1, x2, y2 of the bright rectangle (multiples of 8)


class LabelMap:
    def to_category(self, label):
        return 100 + label


class TinyDataset:
    """Two 64x96 images, each with one bright rectangle at TRUE_BOX (asymmetric in x)."""

    label_map = LabelMap()

    def __len__(self):
        return 2

    def __getitem__(self, i):
        image = torch.zeros(3, 64, 96)
        x1, y1, x2, y2 = (int(v) for v in TRUE_BOX)
        image[:, y1:y2, x1:x2] = 1.0
        return image, {"image_id": torch.tensor(7 + i)}


class FakeDetector(nn.Module):
    """Finds the bright rectangle after resizing like GeneralizedRCNNTransform (nearest), maps back."""

    def __init__(self, *, raw=False):
        super().__init__()
        self.transform = SimpleNamespace(min_size=(64,), max_size=1000)
        self.calls = {"forward": 0, "predict_raw": 0}
        self.seen_sizes = []
        if raw:
            self.predict_raw = self._predict_raw

    def _box(self, image):
        h, w = image.shape[-2:]
        scale = min(self.transform.min_size[-1] / min(h, w), self.transform.max_size / max(h, w))
        resized = F.interpolate(image[None], scale_factor=scale, mode="nearest")[0]
        self.seen_sizes.append(tuple(resized.shape[-2:]))
        ys, xs = torch.nonzero(resized[0] > 0.5, as_tuple=True)
        box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        return box[None] / scale

    def forward(self, images):
        assert not self.training
        self.calls["forward"] += 1
        return [
            {"boxes": self._box(im), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
            for im in images
        ]

    def _predict_raw(self, images):
        self.calls["predict_raw"] += 1
        return [{"boxes": self._box(im), "scores": torch.tensor([[0.9, 0.02]])} for im in images]


def boxes_of(results):
    return [
        [r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
        for r in results
    ]


def test_flip_boxes_round_trip():
    boxes = torch.tensor([[8.0, 16.0, 40.0, 48.0], [0.0, 0.0, 96.0, 10.0]])
    flipped = flip_boxes(boxes, 96)
    assert flipped.tolist() == [[56.0, 16.0, 88.0, 48.0], [0.0, 0.0, 96.0, 10.0]]
    assert torch.equal(flip_boxes(flipped, 96), boxes)


@pytest.mark.parametrize("merge", ["nms", "soft_nms", "wbf"])
def test_flip_maps_back_exactly(merge):
    model = FakeDetector()
    results = predict_tta(model, TinyDataset(), scales=[64], flip=True, merge=merge, batch_size=2)
    # both views found the same box once mapped back: NMS and WBF leave exactly one detection
    # (soft-NMS keeps the duplicate with a decayed score 0.9 * exp(-1 / 0.5))
    for image_id in (7, 8):
        mine = [r for r in results if r["image_id"] == image_id]
        assert boxes_of(mine)[0] == pytest.approx(TRUE_BOX)
        assert mine[0]["category_id"] == 101 and mine[0]["score"] == pytest.approx(0.9)
        if merge == "soft_nms":
            assert [r["score"] for r in mine] == pytest.approx([0.9, 0.9 * math.exp(-2.0)])
            assert boxes_of(mine)[1] == pytest.approx(TRUE_BOX)
        else:
            assert len(mine) == 1
    assert model.calls["forward"] == 2  # one batch, two views


def test_scale_invariance_and_scales_used():
    model = FakeDetector()
    results = predict_tta(
        model, TinyDataset(), scales=[32, (128, 1000)], flip=False, merge="nms", batch_size=1
    )
    assert [r["image_id"] for r in results] == [7, 8]
    for box in boxes_of(results):
        assert box == pytest.approx(TRUE_BOX)
    assert sorted(set(model.seen_sizes)) == [(32, 48), (128, 192)]
    assert model.transform.min_size == (64,) and model.transform.max_size == 1000  # restored


def test_raw_predictions_are_pooled_then_suppressed_once():
    model = FakeDetector(raw=True)
    results = predict_tta(model, TinyDataset(), scales=[64], flip=True, merge="soft_nms", batch_size=2)
    assert model.calls == {"forward": 0, "predict_raw": 2}
    mine = [r for r in results if r["image_id"] == 7]
    decay = math.exp(-1.0 / 0.5)  # identical boxes: IoU 1
    assert [r["category_id"] for r in mine] == [101, 101, 102, 102]
    assert [r["score"] for r in mine] == pytest.approx([0.9, 0.9 * decay, 0.02, 0.02 * decay])
    nms = predict_tta(model, TinyDataset(), scales=[64], flip=True, merge="nms", max_dets=1)
    assert len(nms) == 2 and all(r["score"] == pytest.approx(0.9) for r in nms)
    # WBF fuses final detections (forward), one WBF "model" per view
    wbf = predict_tta(model, TinyDataset(), scales=[64], flip=True, merge="wbf")
    assert model.calls["forward"] == 2 and len(wbf) == 2


def test_scale_restored_on_error_and_presets():
    model = FakeDetector()
    with pytest.raises(RuntimeError), inference_scale(model, min_size=10, max_size=20):
        assert model.transform.min_size == (10,) and model.transform.max_size == 20
        raise RuntimeError("boom")
    assert model.transform.min_size == (64,) and model.transform.max_size == 1000
    assert resolve_scales(model, "ms3") == [(48, 750), (64, 1000), (80, 1250)]
    assert resolve_scales(model, [32, (100, 200)]) == [(32, None), (100, 200)]
    with pytest.raises(ValueError, match="preset"):
        resolve_scales(model, "ms7")
    with pytest.raises(ValueError, match="scale"):
        resolve_scales(model, [(100, 50)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="merge"):
        predict_tta(FakeDetector(), TinyDataset(), scales=[64], merge="vote")
    dataset = TinyDataset()
    dataset.label_map = None
    with pytest.raises(ValueError, match="label_map"):
        predict_tta(FakeDetector(), dataset, scales=[64])
    model = FakeDetector().train()
    predict_tta(model, TinyDataset(), scales=[64], flip=False, label_map=LabelMap())
    assert model.training  # mode restored


class EmptyDetector(FakeDetector):
    def forward(self, images):
        return [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
                for _ in images]  # fmt: skip


@pytest.mark.parametrize("merge", ["nms", "soft_nms", "wbf"])
def test_no_detections_gives_empty_results(merge):
    assert predict_tta(EmptyDetector(), TinyDataset(), scales=[32, 64], merge=merge) == []
