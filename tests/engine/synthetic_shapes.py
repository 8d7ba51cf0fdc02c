"""In-memory synthetic detection data for the sanity test: coloured rectangles/ellipses on noise.

20 classes = 2 shapes x 10 colours; 1-3 objects of 12-48 px per 128x128 image. Deterministic in
``seed``. Returns a ``torch`` data set plus the COCO ground truth dict for evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

COLOURS = (
    np.array(
        [
            [230, 25, 75],
            [60, 180, 75],
            [255, 225, 25],
            [0, 130, 200],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
            [250, 250, 250],
            [0, 0, 0],
        ],
        dtype=np.float32,
    )
    / 255.0
)
NUM_CLASSES = 2 * len(COLOURS)


class Labels:
    """Labels 1..20 are category ids 1..20."""

    num_classes = NUM_CLASSES

    def to_label(self, category_id):
        return int(category_id)

    def to_category(self, label):
        return int(label)


class ShapesDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, *, seed: int = 0, size: int = 128, first_id: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.label_map = Labels()
        self.images, self.targets, annotations = [], [], []
        yy, xx = np.mgrid[0:size, 0:size]
        for index in range(n):
            image = rng.uniform(0.3, 0.7, (size, size, 3)).astype(np.float32)
            boxes, labels = [], []
            for _ in range(int(rng.integers(1, 4))):
                w, h = (int(v) for v in rng.integers(12, 49, 2))
                x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                shape, colour = int(rng.integers(2)), int(rng.integers(len(COLOURS)))
                if shape == 0:
                    mask = (xx >= x) & (xx < x + w) & (yy >= y) & (yy < y + h)
                else:
                    mask = ((xx + 0.5 - x - w / 2) / (w / 2)) ** 2 + (
                        (yy + 0.5 - y - h / 2) / (h / 2)
                    ) ** 2 <= 1
                image[mask] = COLOURS[colour]
                boxes.append([x, y, x + w, y + h])
                labels.append(1 + shape * len(COLOURS) + colour)
            image_id = first_id + index
            self.images.append(torch.from_numpy(image).permute(2, 0, 1).contiguous())
            self.targets.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32),
                    "labels": torch.tensor(labels),
                    "image_id": image_id,
                }
            )
            for (x1, y1, x2, y2), label in zip(boxes, labels):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": label,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        self.coco = {
            "images": [{"id": t["image_id"], "width": size, "height": size} for t in self.targets],
            "annotations": annotations,
            "categories": [{"id": c, "name": str(c)} for c in range(1, NUM_CLASSES + 1)],
        }

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        target = self.targets[index]
        return self.images[index], {k: v.clone() if torch.is_tensor(v) else v for k, v in target.items()}


def coco_ap50(gt: dict, results: list[dict]) -> float:
    """AP at IoU 0.5 (0..1) with pycocotools, quietly."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = gt
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1])
