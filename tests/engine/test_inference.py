"""predict / save_results / load_checkpoint."""

import json

import pytest
import torch
from engine_helpers import ToyDetections, toy_model

from o365lib.engine import load_checkpoint, predict, save_results


class _Labels:
    def to_category(self, label):
        return {1: 105, 2: 7, 3: 42}[label]


class _FixedDetector(torch.nn.Module):
    """Eval-mode stand-in: two detections per image, remembers the thresholds it was called with."""

    def __init__(self):
        super().__init__()
        self.score_thresh, self.detections_per_img, self.seen = 0.05, 100, []

    def forward(self, images):
        self.seen.append((self.score_thresh, self.detections_per_img, self.training, len(images)))
        return [
            {
                "boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 5.0, 5.0]]),
                "labels": torch.tensor([3, 1]),
                "scores": torch.tensor([0.9, 0.25]),
            }
            for _ in images
        ]


def test_predict_maps_labels_to_category_ids_and_xywh():
    model = _FixedDetector().train()
    dataset = ToyDetections(n=3)
    results = predict(model, dataset, batch_size=2, max_dets=50, score_threshold=0.01, label_map=_Labels())
    assert len(results) == 6
    assert results[0] == {"image_id": 100, "category_id": 42, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.9}
    assert results[1] == {"image_id": 100, "category_id": 105, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.25}
    assert [r["image_id"] for r in results] == [100, 100, 101, 101, 102, 102]
    assert model.seen == [(0.01, 50, False, 2), (0.01, 50, False, 1)]
    assert (model.score_thresh, model.detections_per_img, model.training) == (0.05, 100, True)  # restored


def test_predict_real_model_and_dataset_label_map(tmp_path):
    dataset = ToyDetections(n=2)
    dataset.label_map = _Labels()
    results = predict(toy_model(), dataset, batch_size=2, max_dets=5, score_threshold=0.0)
    assert len(results) == 10
    assert {r["category_id"] for r in results} <= {105, 7, 42}
    for r in results:
        x, y, w, h = r["bbox"]
        assert w >= 0 and h >= 0 and x + w <= 64.01 and y + h <= 64.01
    path = save_results(results, tmp_path / "sub" / "val.json")
    assert json.loads(path.read_text()) == results
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(ValueError, match="label_map"):
        predict(toy_model(), ToyDetections(n=1), batch_size=1)


def test_load_checkpoint_training_and_raw(tmp_path):
    source = toy_model(seed=1)
    torch.save({"model": source.state_dict(), "iteration": 12, "optimizer": {}}, tmp_path / "ckpt.pt")
    torch.save(source.state_dict(), tmp_path / "raw.pt")
    for name, meta in (("ckpt.pt", {"iteration": 12}), ("raw.pt", {})):
        model = toy_model(seed=2)
        assert load_checkpoint(tmp_path / name, model) == meta
        assert all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values())
        )
    with pytest.raises(ValueError, match=r"(?s)ckpt\.pt does not fit this model"):
        load_checkpoint(tmp_path / "ckpt.pt", toy_model(num_classes=4))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt", source)
