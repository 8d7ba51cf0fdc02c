"""The paired bootstrap re-weights per-image outcomes; a weight is exactly a copy of an image."""

import numpy as np

from o365lib.evaluation.compare import bootstrap_per_class, image_weights
from o365lib.evaluation.evaluator import evaluate_arrays
from tests.support.coco_workload import random_workload


def _per_class(metrics):
    return np.array([np.nan if v is None else v for v in metrics["per_class"].values()])


def test_unit_weights_give_the_evaluation():
    gt, dets = random_workload(0, num_images=60)
    metrics, arrays = evaluate_arrays(gt, dets, ranges=(), outcomes=True)
    boot = bootstrap_per_class(arrays["outcomes"], np.ones((3, metrics["num_images"])))
    np.testing.assert_allclose(boot, np.broadcast_to(_per_class(metrics), boot.shape), rtol=0, atol=1e-9)


def test_a_weight_of_two_is_a_copy_and_zero_is_a_drop():
    gt, dets = random_workload(1, num_images=40)
    # distinct scores: with ties, a copy sorts after all images (pycocotools' image order) while a weight
    # keeps it next to its original, the approximation the module states
    dets = [dict(d, score=d["score"] + i * 1e-7) for i, d in enumerate(dets)]
    _, arrays = evaluate_arrays(gt, dets, ranges=(), outcomes=True)
    ids = sorted(img["id"] for img in gt["images"])
    twice, dropped, copy_id = ids[5], ids[7], 10 ** 6
    weights = np.ones((1, len(ids)))
    weights[0, 5], weights[0, 7] = 2, 0
    images = [img for img in gt["images"] if img["id"] != dropped] + [{"id": copy_id, "width": 640, "height": 480}]
    anns = [a for a in gt["annotations"] if a["image_id"] != dropped]
    anns += [dict(a, id=a["id"] + 10 ** 6, image_id=copy_id) for a in gt["annotations"] if a["image_id"] == twice]
    resampled = [d for d in dets if d["image_id"] != dropped] + [dict(d, image_id=copy_id) for d in dets
                                                                   if d["image_id"] == twice]
    expected = _per_class(evaluate_arrays({**gt, "images": images, "annotations": anns}, resampled, ranges=())[0])
    np.testing.assert_allclose(bootstrap_per_class(arrays["outcomes"], weights)[0], expected, rtol=0, atol=1e-9)


def test_image_weights_resample_every_image_count():
    w = image_weights(50, samples=7, seed=3)
    assert w.shape == (7, 50) and (w.sum(axis=1) == 50).all()
    assert (image_weights(50, samples=7, seed=3) == w).all() and not (image_weights(50, samples=7, seed=4) == w).all()
