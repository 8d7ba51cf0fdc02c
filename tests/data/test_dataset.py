"""DetectionDataset on a duck-typed CocoData stand-in and on the real one; images checked at first read."""

import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from o365lib.data import CocoData, DataValidationError, DetectionDataset, image_category_ids, load_coco


class _Labels:
    def __init__(self, ids):
        self.ids = sorted(ids)
        self.num_classes = len(self.ids)

    def to_label(self, category_id):
        return self.ids.index(category_id) + 1

    def to_category(self, label):
        return self.ids[label - 1]


def _coco(tmp_path):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 128, 0)
    Image.fromarray(pixels).save(tmp_path / "imgs" / "a.png")
    Image.fromarray(np.full((10, 10, 3), 51, dtype=np.uint8)).save(tmp_path / "imgs" / "b.png")
    images = [
        {"id": 7, "file_name": "a.png", "width": 30, "height": 20},
        {"id": 3, "file_name": "b.png", "width": 10, "height": 10},
        {"id": 9, "file_name": "gone.png", "width": 10, "height": 10},
    ]
    anns = {
        7: [
            {"id": 1, "image_id": 7, "category_id": 40, "bbox": [1.0, 2.0, 10.0, 5.0], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 12, "bbox": [0.0, 0.0, 30.0, 20.0], "iscrowd": 1},
            {"id": 3, "image_id": 7, "category_id": 12, "bbox": [5.0, 5.0, 4.0, 4.0]},
        ],
        3: [],
        9: [],
    }
    return SimpleNamespace(
        dataset={"images": images, "annotations": [a for v in anns.values() for a in v]},
        image_root=tmp_path / "imgs",
        images={i["id"]: i for i in images},
        anns_by_image=anns,
        label_map=_Labels([12, 40, 99]),
    )


def test_items_targets_and_category_lists(tmp_path):
    data = DetectionDataset(_coco(tmp_path))
    assert len(data) == 3 and data.image_ids == [7, 3, 9]
    image, target = data[0]
    assert image.dtype == torch.float32 and image.shape == (3, 20, 30)
    assert image[:, 0, 0].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    assert target["image_id"] == 7
    assert target["boxes"].tolist() == [[1.0, 2.0, 11.0, 7.0], [5.0, 5.0, 9.0, 9.0]]  # crowd box left out
    assert target["labels"].tolist() == [2, 1] and target["labels"].dtype == torch.int64
    empty = data[1][1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert data.image_category_ids() == [[40, 12, 12], [], []]
    assert image_category_ids(data.coco.dataset) == [[40, 12, 12], [], []]  # from the COCO dict alone
    assert not hasattr(data, "image_size")
    assert data.label_map.to_category(2) == 40


def test_missing_image_names_file_and_id(tmp_path):
    data = DetectionDataset(_coco(tmp_path))
    with pytest.raises(DataValidationError, match=r"<dataset>: 1 problem: image id=9: field 'file_name' 'gone\.png' not found"):
        data[2]
    with pytest.raises(IndexError):
        data[3]


def test_cache_keeps_decoded_images(tmp_path):
    cached = DetectionDataset(_coco(tmp_path), cache_images=True)
    uncached = DetectionDataset(_coco(tmp_path), cache_images=False)
    first = cached[1][0]
    uncached[1]
    (tmp_path / "imgs" / "b.png").unlink()
    assert torch.equal(cached[1][0], first) and first[0, 0, 0].item() == pytest.approx(0.2)
    assert cached.load_uint8(1).dtype == torch.uint8
    with pytest.raises(DataValidationError, match=r"image id=3: field 'file_name' 'b\.png' not found"):
        uncached[1]


def test_not_a_coco_object():
    with pytest.raises(TypeError, match="CocoData-like"):
        DetectionDataset({"images": []})


def test_real_cocodata(tmp_path):
    coco = _coco(tmp_path)
    real = CocoData.from_dataset(
        {
            "images": coco.dataset["images"][:2],
            "annotations": coco.dataset["annotations"],
            "categories": [{"id": 40, "name": "b"}, {"id": 12, "name": "a"}],
        },
        image_root=tmp_path / "imgs",
    )
    data = DetectionDataset(real)
    _, target = data[0]
    assert target["labels"].tolist() == [2, 1]  # labels follow sorted category ids: 12 -> 1, 40 -> 2


def _write_json(tmp_path, coco) -> str:
    path = tmp_path / "train.json"
    categories = [{"id": 12, "name": "a"}, {"id": 40, "name": "b"}, {"id": 99, "name": "c"}]
    path.write_text(json.dumps({**coco.dataset, "categories": categories}))
    return path


def test_lazy_check_names_json_file_image_and_field(tmp_path):
    coco = _coco(tmp_path)
    path = _write_json(tmp_path, coco)
    data = DetectionDataset(load_coco(path, image_root=tmp_path / "imgs", check_images="lazy"))
    assert data[0][0].shape == (3, 20, 30)
    with pytest.raises(DataValidationError) as info:
        data[2]
    message = str(info.value)
    assert message.startswith(str(path)) and "image id=9: field 'file_name' 'gone.png' not found" in message
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "b.png")  # JSON: 10x10
    with pytest.raises(DataValidationError) as info:
        data[1]
    message = str(info.value)
    assert message.startswith(str(path))
    assert "image id=3: field 'width' says 10x10 but file" in message and "b.png is 12x10" in message
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "gone.png")
    (tmp_path / "imgs" / "b.png").write_bytes(b"\x89PNG broken")
    assert data[2][0].shape == (3, 10, 10)
    with pytest.raises(DataValidationError, match=r"image id=3: field 'file_name' 'b\.png': cannot decode"):
        data[1]


def test_swapped_size_hints_at_exif_rotation(tmp_path):
    coco = _coco(tmp_path)
    Image.fromarray(np.zeros((30, 20, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "a.png")  # JSON: 30x20
    data = DetectionDataset(load_coco(_write_json(tmp_path, coco), image_root=tmp_path / "imgs", check_images="off"))
    with pytest.raises(DataValidationError, match=r"image id=7: fields 'width' and 'height' .*EXIF rotation"):
        data[0]


def test_error_in_a_loader_worker_keeps_its_type_and_message(tmp_path):
    coco = _coco(tmp_path)
    data = DetectionDataset(load_coco(_write_json(tmp_path, coco), image_root=tmp_path / "imgs", check_images="off"))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, [2]), batch_size=1, num_workers=1,
                                         collate_fn=lambda batch: batch)
    with pytest.raises(DataValidationError, match=r"train\.json: 1 problem: image id=9: field 'file_name'"):
        next(iter(loader))
    error = DataValidationError("x.json", ["image id=1: field 'file_name' 'a.jpg' not found"])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.problems, str(copy)) == (error.source, error.problems, str(error))
