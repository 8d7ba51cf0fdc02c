"""Random detection inputs for the soft-NMS and WBF tests (numpy, ensemble-boxes' domain [0, 1])."""

import numpy as np


def detections(seed, *, num_models=3, num_boxes=120, num_labels=20, ties=False):
    """One image as several models see it: ``[(boxes f32 [n, 4], scores f32 [n], labels i64 [n])]``.

    A few objects with long-tailed labels; each model emits jittered copies (mostly with the
    object's label) plus background boxes. ``ties=True`` snaps coordinates to a 1/20 grid and
    scores to multiples of 0.05, so exact duplicates and tied scores are common.
    """
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_labels + 1)
    p /= p.sum()
    n_obj = int(rng.integers(2, 8))
    centre = rng.uniform(0.2, 0.8, (n_obj, 2))
    size = rng.uniform(0.05, 0.4, (n_obj, 2))
    obj_label = rng.choice(num_labels, n_obj, p=p)
    out = []
    for _ in range(num_models):
        n = int(rng.integers(num_boxes // 2, num_boxes + 1))
        obj = rng.integers(0, n_obj, n)
        c = centre[obj] + rng.normal(0, 0.05, (n, 2)) * size[obj]
        wh = size[obj] * np.exp(rng.normal(0, 0.1, (n, 2)))
        background = rng.random(n) < 0.2
        c[background] = rng.uniform(0.1, 0.9, (int(background.sum()), 2))
        same = rng.random(n) < 0.7
        labels = np.where(same & ~background, obj_label[obj], rng.choice(num_labels, n, p=p))
        scores = np.where(same & ~background, rng.beta(3, 2, n), rng.beta(1, 6, n))
        boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).clip(0, 1)
        if ties:
            boxes, scores = np.round(boxes * 20) / 20, np.round(scores * 20) / 20
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
        out.append((boxes.clip(0, 1).astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)))
    return out


def rows(boxes, scores, labels):
    """``(label, score, x1, y1, x2, y2)`` rows in float32, sorted: compares outputs whatever the order."""
    to_np = lambda x: x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    r = np.concatenate(
        [to_np(labels).reshape(-1, 1), to_np(scores).reshape(-1, 1), to_np(boxes).reshape(-1, 4)], 1
    ).astype(np.float32)
    return r[np.lexsort(r.T[::-1])]
