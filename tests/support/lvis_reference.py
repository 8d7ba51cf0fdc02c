"""lvis-api 0.5.3 as the reference of the LVIS protocol, and LVIS-format test data.

lvis-api 0.5.3 (the last release) calls ``np.float``, an alias numpy 1.24 removed.
:func:`lvis_eval` provides the alias (``np.float = float``, what it always meant) before lvis-api
runs, instead of pinning an old numpy for the whole test suite.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np


def install_numpy_float_alias() -> None:
    """Give numpy back ``np.float`` (= the builtin ``float``) if this numpy removed it."""
    try:
        np.float  # noqa: B018
    except AttributeError:
        np.float = float


def lvis_eval(gt: dict, dets: list[dict], *, tmp_path, max_dets: int = 300):
    """lvis-api's ``LVISEval`` (bbox) of ``dets`` on ``gt``, run; returns the evaluator."""
    install_numpy_float_alias()
    from lvis import LVIS, LVISEval, LVISResults

    path = tmp_path / "lvis_gt.json"
    path.write_text(json.dumps(gt))
    logging.getLogger("lvis").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        lvis_gt = LVIS(str(path))
        results = LVISResults(lvis_gt, json.loads(json.dumps(dets)), max_dets=max_dets)
        ev = LVISEval(lvis_gt, results, iou_type="bbox")
        ev.run()
    return ev


def lvis_workload(seed: int, *, num_images: int = 40, num_classes: int = 30, max_dets_image: int = 340):
    """LVIS-format ground truth and detections that exercise every rule of the LVIS protocol.

    - categories carry ``frequency`` r/c/f; the last three classes have no validation ground truth
      (one of them is still listed as negative in some images, so its detections count);
    - images carry ``neg_category_ids`` (classes verified absent) and
      ``not_exhaustive_category_ids`` (some of their present classes);
    - every fourth image holds ``iscrowd=1`` annotations (lvis-api treats them as plain ground
      truth), a few annotations carry ``ignore=1``, one has zero area;
    - detections: jittered copies of ground truth (some of the wrong class), random boxes of
      present, negative and unlisted classes, rounded scores (ties), a few zero-width boxes, and
      more than 300 per image in some images (the per-image cap).
    """
    rng = np.random.default_rng(seed)
    cat_ids = [5 * k + 2 for k in range(num_classes)]
    no_val = set(cat_ids[-3:])
    freq = rng.choice(["r", "c", "f"], size=num_classes, p=[0.3, 0.3, 0.4])
    categories = [{"id": c, "name": f"class{c}", "frequency": str(f)} for c, f in zip(cat_ids, freq)]
    present_pool = [c for c in cat_ids if c not in no_val]
    weights = 1.0 / np.arange(1, len(present_pool) + 1)
    weights /= weights.sum()
    images, anns, dets = [], [], []
    for i in range(num_images):
        img_id = 1000 + 3 * i
        n = 0 if i % 9 == 4 else int(rng.integers(1, 10))
        cls = rng.choice(present_pool, size=n, p=weights) if n else np.zeros(0, int)
        present = sorted({int(c) for c in cls})
        absent = [c for c in cat_ids if c not in present]
        neg = sorted(int(c) for c in rng.choice(absent, size=min(len(absent), int(rng.integers(0, 8))), replace=False))
        if i % 5 == 0:
            neg = sorted(set(neg) | {cat_ids[-1]})  # a class without val ground truth, verified absent
        not_exhaustive = sorted(int(c) for c in present if rng.random() < 0.3)
        images.append({"id": img_id, "width": 640, "height": 480, "neg_category_ids": neg,
                       "not_exhaustive_category_ids": not_exhaustive})
        boxes = []
        for c in cls:
            w, h = np.exp(rng.uniform(np.log(4), np.log(300), size=2))
            x, y = rng.uniform(0, 640 - min(w, 600)), rng.uniform(0, 480 - min(h, 450))
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(c),
                   "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h)}
            if i % 4 == 1 and rng.random() < 0.4:
                ann["iscrowd"] = 1
            if rng.random() < 0.05:
                ann["ignore"] = 1
            anns.append(ann)
            boxes.append((int(c), x, y, w, h))
        if i == 2 and anns:
            anns[-1]["area"] = 0.0  # skipped by the protocol
        count = max_dets_image if i % 6 == 0 else int(rng.integers(0, 60))
        for _ in range(count):
            r = rng.random()
            if boxes and r < 0.55:
                c, x, y, w, h = boxes[int(rng.integers(len(boxes)))]
                x, y = x + rng.normal(0, 0.08 * w), y + rng.normal(0, 0.08 * h)
                w, h = w * rng.uniform(0.85, 1.15), h * rng.uniform(0.85, 1.15)
                if rng.random() < 0.15:
                    c = int(rng.choice(cat_ids))
            else:
                pool = neg if (r < 0.75 and neg) else cat_ids
                c = int(rng.choice(pool))
                w, h = np.exp(rng.uniform(np.log(4), np.log(300), size=2))
                x, y = rng.uniform(0, 600), rng.uniform(0, 450)
            if rng.random() < 0.01:
                w = 0.0
            dets.append({"image_id": img_id, "category_id": c, "bbox": [float(x), float(y), float(w), float(h)],
                         "score": float(np.round(rng.random(), 2))})
    return {"images": images, "annotations": anns, "categories": categories}, dets
