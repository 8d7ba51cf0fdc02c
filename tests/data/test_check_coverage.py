"""check-data and ``check_images: quick`` say what they checked: every header is read, never a silent sample."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from o365lib.data import load_coco
from o365lib.data.check import check_dataset
from o365lib.data.validate import DataValidationError
from o365lib.strict_yaml import read_yaml_mapping

ROOT = Path(__file__).resolve().parents[2]


def _split(folder: Path, count: int, *, size=(16, 12)) -> Path:
    """A COCO split of ``count`` PNG images of ``size`` (one box each) under ``folder/images``; returns the JSON."""
    (folder / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(1, count + 1):
        Image.new("RGB", size, (i % 255, 0, 0)).save(folder / "images" / f"{i:04d}.png")
        images.append({"id": i, "file_name": f"{i:04d}.png", "width": size[0], "height": size[1]})
        anns.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0})
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    return path


def _profile(tmp_path: Path, train: Path, val: Path) -> Path:
    raw = read_yaml_mapping(ROOT / "parameters" / "profiles" / "smoke.yaml")
    raw["results_dir"] = str(tmp_path / "results")
    raw["model"]["coco_standin"] = None  # generated data only
    raw["data"].update(source="coco", train=str(train), val=str(val), train_images=str(train.parent / "images"),
                       val_images=str(val.parent / "images"), box_policy="drop", check_images="quick")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_check_data_finds_every_empty_image_and_says_what_it_checked(tmp_path, capsys):
    """The issue's case: a COCO-source profile whose train split has three 0-byte images."""
    from o365lib.book.__main__ import main

    train, val = _split(tmp_path / "train", 600), _split(tmp_path / "val", 5)
    empty = [17, 301, 599]
    for i in empty:
        (tmp_path / "train" / "images" / f"{i:04d}.png").write_bytes(b"")
    code = main(["check-data", "--profile", str(_profile(tmp_path, train, val))])
    out = capsys.readouterr().out
    assert code == 1
    for i in empty:  # decoded (in the sample) or header only, each is named
        file = re.escape(str(tmp_path / "train" / "images" / f"{i:04d}.png"))
        assert re.search(rf"image id={i}: field 'file_name' {file} (is not a readable image, its header cannot be "
                         rf"read|cannot be decoded) \(empty file, 0 bytes\)", out), i
    assert "OK" not in out.splitlines()[-1]
    assert out.splitlines()[-1] == "FAILED: 3 error(s) (205 image(s) decoded, 400 header only, 0 not opened)"
    assert "of 605 listed image(s), 205 decoded and 400 opened for their header only" in out


def test_every_header_is_read_even_without_a_sample(tmp_path):
    path = _split(tmp_path, 6)
    images = tmp_path / "images"
    (images / "0002.png").write_bytes((images / "0002.png").read_bytes()[:20])  # header cut short
    Image.new("RGB", (32, 12)).save(images / "0004.png")  # the JSON says 16x12
    (images / "0005.png").unlink()
    report = check_dataset({"train": path}, {"train": images}, sample=0)
    split = report.splits["train"]
    assert (split.decoded, split.headers_read, split.bad_images) == (0, 5, ["0002.png", "0004.png"])
    errors = "\n".join(report.errors)
    assert f"train: image id=2: field 'file_name' {images / '0002.png'} is not a readable image" in errors
    assert f"train: image id=4: field 'width' says 16x12 but file {images / '0004.png'} is 32x12" in errors
    assert "train: image id=5: field 'file_name' '0005.png' not found" in errors
    assert report.text().splitlines()[-1] == "FAILED: 3 error(s) (0 image(s) decoded, 5 header only, 1 not opened)"


def test_ok_is_qualified_by_what_was_checked_and_all_images_decodes_every_one(tmp_path):
    path = _split(tmp_path, 4, size=(64, 48))
    images = tmp_path / "images"
    report = check_dataset({"train": path}, {"train": images}, sample=1)
    lines = report.text().splitlines()
    assert lines[-1] == "OK: no errors in what was checked (1 image(s) decoded, 3 header only, 0 not opened)"
    assert lines[-2] == ("== images checked: of 4 listed image(s), 1 decoded and 3 opened for their header only "
                         "(readable, width and height against the JSON); 0 not opened (missing). Pixel data cut off "
                         "after an intact header is found only by decoding: --all-images decodes every image.")
    Image.new("RGB", (64, 48), (200, 10, 10)).save(images / "0003.jpg", quality=95)
    whole = (images / "0003.jpg").read_bytes()
    (images / "0003.png").write_bytes(whole[: whole.index(b"\xff\xda") + 20])  # an intact header, no pixels
    assert check_dataset({"train": path}, {"train": images}, sample=0).errors == []  # headers cannot tell
    report = check_dataset({"train": path}, {"train": images}, all_images=True)
    assert report.splits["train"].decoded == 4 and report.splits["train"].all_decoded
    assert [e.split(" (")[0] for e in report.errors] == \
        [f"train: image id=3: field 'file_name' {images / '0003.png'} cannot be decoded"]
    assert "--all-images" not in report.text()


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_quick_load_compares_header_sizes_with_the_json(tmp_path, mode):
    """The issue's case: a record saying 64x64 for a 128x128 file fails at load, not hours later."""
    path = _split(tmp_path, 3, size=(64, 64))
    Image.new("RGB", (128, 128)).save(tmp_path / "images" / "0002.png")
    with pytest.raises(DataValidationError) as info:
        load_coco(path, check_images=mode)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "image id=2: fields 'width' and 'height' say 64x64 but file" in message and "is 128x128" in message
    assert load_coco(path, check_images="lazy").image_ids == [1, 2, 3]  # lazy: checked at first read
