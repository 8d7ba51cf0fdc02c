"""A small random COCO workload for evaluation tests (non-contiguous ids, crowd, empty images, ties)."""

import numpy as np


def random_workload(seed, *, num_images=30, num_classes=12, dets_per_image=25):
    """GT + noisy detections; class 1..num_classes, with some classes without gt or dets."""
    rng = np.random.default_rng(seed)
    cat_ids = [3 * k + 1 for k in range(num_classes)]  # non-contiguous ids
    no_gt = {cat_ids[-1]}  # a class never in gt
    no_det = {cat_ids[-2]}  # a class never detected
    images, anns, dets = [], [], []
    ann_id = 1
    for i in range(num_images):
        img_id = 100 + i
        images.append({"id": img_id, "width": 640, "height": 480, "file_name": f"{img_id}.jpg"})
        n = 0 if i % 7 == 3 else int(rng.integers(1, 8))  # some images with no gt
        boxes = []
        for _ in range(n):
            c = int(rng.choice([c for c in cat_ids if c not in no_gt], p=None))
            w, h = rng.uniform(4, 200, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            anns.append({"id": ann_id, "image_id": img_id, "category_id": c, "bbox": [x, y, w, h],
                         "area": float(w * h), "iscrowd": int(rng.random() < 0.05)})
            ann_id += 1
            boxes.append((c, x, y, w, h))
        for _ in range(dets_per_image):
            if boxes and rng.random() < 0.6:
                c, x, y, w, h = boxes[int(rng.integers(len(boxes)))]
                x, y = x + rng.normal(0, 0.1 * w), y + rng.normal(0, 0.1 * h)
                w, h = w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)
                if rng.random() < 0.2:
                    c = int(rng.choice(cat_ids))
            else:
                c = int(rng.choice(cat_ids))
                w, h = rng.uniform(4, 200, size=2)
                x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            if c in no_det:
                continue
            dets.append({"image_id": img_id, "category_id": c, "bbox": [float(x), float(y), float(w), float(h)],
                         "score": float(np.round(rng.random(), 3))})  # rounding -> ties
    cats = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}, dets
