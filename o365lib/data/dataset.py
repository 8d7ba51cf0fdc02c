"""``DetectionDataset``: a COCO data set as (image tensor, target) pairs for torchvision detectors.

It reads a ``CocoData`` (``o365lib.data.load_coco``) or anything with the same fields
(``dataset`` with an "images" list, ``image_root``, ``anns_by_image``, ``label_map``; optionally
``path`` and ``layout``), keeps the order of ``dataset["images"]`` (so sampler indices are
stable), and returns

- the image as a float ``[3, H, W]`` tensor in 0..1 (decoded once and cached as uint8 when
  ``cache_images``: 128x128 images cost 48 KiB each, so 3500 of them fit in ~170 MiB);
- ``{"boxes": [N, 4] xyxy float32, "labels": [N] int64 in 1..K, "image_id": int}``.

Every image is checked against its JSON record when it is first read, whatever the loader's
``check_images`` was: a missing file, an undecodable file, or a file whose real width/height
differ from the record's (its boxes were validated against the wrong size) raises a
:class:`~o365lib.data.validate.DataValidationError` naming the JSON file, the image id and the
field (``file_name``, ``width``, ``height``).

Crowd annotations (``iscrowd=1``) and boxes without area are not training targets; images without
annotations give empty targets (pure background images are allowed). No augmentation here: the
training loop flips and rescales, from its own seeded RNG, so resuming is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from o365lib.data.images import size_problem
from o365lib.data.objects365 import relative_image_name
from o365lib.data.stats import image_category_ids
from o365lib.data.validate import DataValidationError

__all__ = ["MIN_BOX_SIDE", "DetectionDataset", "collate_detection", "read_image"]

#: Boxes narrower or shorter than this (pixels) are dropped from the training targets.
MIN_BOX_SIDE = 1e-2


def read_image(path: Path, *, record: dict, source: str = "<dataset>") -> torch.Tensor:
    """The RGB image of an image ``record`` as a uint8 ``[3, H, W]`` tensor, checked against the record.

    Raises DataValidationError (naming ``source``, the image id and the field) when the file is
    missing or undecodable (``file_name``) or its size differs from the record (``width``/``height``).
    """
    image_id, file_name = record["id"], record["file_name"]
    if not path.is_file():
        problem = f"image id={image_id}: field 'file_name' {file_name!r} not found (looked for {path})"
        raise DataValidationError(source, [problem])
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except Exception as error:  # truncated / not an image
        problem = f"image id={image_id}: field 'file_name' {file_name!r}: cannot decode {path} ({error})"
        raise DataValidationError(source, [problem]) from error
    problem = size_problem(record, (array.shape[1], array.shape[0]), file=path)
    if problem:
        raise DataValidationError(source, [problem])
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class DetectionDataset(torch.utils.data.Dataset):
    """Index ``i`` -> ``(image float CHW 0..1, target)`` for the i-th image of ``coco.dataset``."""

    def __init__(self, coco: Any, *, cache_images: bool = True) -> None:
        for field in ("dataset", "image_root", "anns_by_image", "label_map"):
            if not hasattr(coco, field):
                raise TypeError(f"DetectionDataset needs a CocoData-like object with .{field}")
        self.coco = coco
        self.label_map = coco.label_map
        self.image_root = Path(coco.image_root)
        self.layout = getattr(coco, "layout", "coco")
        path = getattr(coco, "path", None)
        self.source = str(path) if path is not None else "<dataset>"
        self.image_records: list[dict] = list(coco.dataset["images"])
        self.image_ids: list[int] = [int(record["id"]) for record in self.image_records]
        self.cache_images = bool(cache_images)
        self._cache: dict[int, torch.Tensor] = {}
        self._targets = [self._build_target(record) for record in self.image_records]

    def _build_target(self, record: dict) -> dict[str, torch.Tensor | int]:
        boxes, labels = [], []
        for ann in self.coco.anns_by_image.get(record["id"], []):
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(self.label_map.to_label(ann["category_id"]))
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": int(record["id"]),
        }

    def __len__(self) -> int:
        return len(self.image_records)

    def load_uint8(self, index: int) -> torch.Tensor:
        """The decoded image (uint8 ``[3, H, W]``), from the cache when enabled."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        record = self.image_records[index]
        image = read_image(self.image_path(index), record=record, source=self.source)
        if self.cache_images:
            self._cache[index] = image
        return image

    def image_path(self, index: int) -> Path:
        """Where the ``index``-th image lives (``file_name`` mapped through the data's layout)."""
        return self.image_root / relative_image_name(self.image_records[index]["file_name"], layout=self.layout)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = index % len(self)
        image = self.load_uint8(index).float().div_(255.0)
        target = self._targets[index]
        return image, {
            "boxes": target["boxes"].clone(),
            "labels": target["labels"].clone(),
            "image_id": target["image_id"],
        }

    def image_category_ids(self) -> list[list[int]]:
        """Per image (dataset order) the category id of each annotation: ``o365lib.data.image_category_ids``."""
        return image_category_ids(self.coco)


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists (detectors take images of different sizes)."""
    return [image for image, _ in batch], [target for _, target in batch]
