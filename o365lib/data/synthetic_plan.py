"""The synthetic data set's plan: categories, long-tailed counts and image layouts (no pixels).

Planning is separate from rendering so the statistics (365 classes, max/min, val coverage, the
65-class tiny track) can be checked in milliseconds without drawing a single image.

The training distribution imitates Objects365's: over ranks 1..300 the larger of a steep power
law (the head: rank 1 is the "person" class) and a slowly decaying one (the long middle), then
ranks 301..365 decaying log-linearly to the rarest class. Images are dense (Objects365 averages
~15 boxes per image), so an epoch shows many instances for few images. Category ids are assigned by name order while ranks come from a seeded
permutation, so id order is *not* rank order and code that maps classes by position fails.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from o365lib.data.synthetic_render import COLOURS, SHAPE_ASPECT, SHAPES, TEXTURES

__all__ = [
    "NUM_CLASSES",
    "PROFILES",
    "SPLITS",
    "TINY_RANKS",
    "SyntheticPlan",
    "SyntheticProfile",
    "build_categories",
    "layout_images",
    "plan_dataset",
    "train_counts",
]

NUM_CLASSES = 365
HEAD_RANKS = 300  # ranks 1..300 follow the power law, 301..365 are the tiny-track tail
TINY_RANKS = (301, 365)
SPLITS = ("train", "val", "test", "tiny_train", "tiny_val", "tiny_test")
STYLES = ("normal", "small_clustered", "large_plain")
LARGE_FROM_RANK = 11  # the most frequent class drawn large has rank 11
# object side length ranges in pixels (before the per-shape aspect ratio), by style
_SIZES = {"normal": (14.0, 44.0), "small_clustered": (7.0, 12.0), "large_plain": (56.0, 92.0)}


@dataclass(frozen=True)
class SyntheticProfile:
    """Sizes of one generated data set (see :data:`PROFILES`)."""

    image_size: int
    head_instances: int  # training instances of rank 1
    head_power: float  # n(r) = max(head_instances * r ** -head_power, mid law) for r <= 300
    tail_from: int  # ranks 301..365 decay log-linearly from tail_from ...
    tail_to: int  # ... down to tail_to training instances
    eval_min_per_class: int  # val/test instances of every class (full track) ...
    eval_extra: int  # ... plus this many more, shared in proportion to training frequency
    tiny_train_from: int  # tiny-track training instances: tiny rank 1 ...
    tiny_train_to: int  # ... down to tiny rank 65 (log-linear)
    tiny_eval_per_class: int  # tiny val/test instances of every class
    max_objects: int = 12  # an image is closed once it holds min_objects..max_objects objects
    min_objects: int = 1
    mid_instances: int = 0  # the mid law n(r) = mid_instances * (r / 300) ** -mid_power (0: none)
    mid_power: float = 0.0
    size_scale: float = 1.0  # multiplies the object side lengths of the normal and large styles


PROFILES: dict[str, SyntheticProfile] = {
    "smoke": SyntheticProfile(image_size=128, head_instances=150, head_power=1.0, tail_from=2, tail_to=1,
                              eval_min_per_class=2, eval_extra=0, tiny_train_from=8, tiny_train_to=3,
                              tiny_eval_per_class=2),
    # rank 1: 10,000; rank 150: ~42; rank 300: 25; ranks 301..365: 22 -> 10 (max/min 1000)
    "default": SyntheticProfile(image_size=128, head_instances=10_000, head_power=1.6, mid_instances=25,
                                mid_power=0.75, tail_from=22, tail_to=10, eval_min_per_class=10,
                                eval_extra=400, tiny_train_from=70, tiny_train_to=18, tiny_eval_per_class=10,
                                min_objects=6, max_objects=16, size_scale=1.0),
}


@dataclass
class SyntheticPlan:
    """Everything but the pixels: COCO dicts per split, categories, the planned ranking."""

    profile: str
    seed: int
    image_size: int
    categories: list[dict]  # sorted by id, with extras shape/colour/texture/style
    ranking: dict[int, int]  # category id -> rank (equals class_ranks of the train split)
    splits: dict[str, dict]  # split name -> COCO dict (file_name relative to images/)


def _log_linear(start: float, stop: float, n: int) -> np.ndarray:
    return np.rint(np.exp(np.linspace(np.log(start), np.log(stop), n))).astype(int)


def train_counts(profile: SyntheticProfile) -> np.ndarray:
    """Planned training instances by rank (index 0 = rank 1); non-increasing."""
    ranks = np.arange(1, HEAD_RANKS + 1, dtype=float)
    law = np.maximum(profile.head_instances * ranks**-profile.head_power,
                     profile.mid_instances * (ranks / HEAD_RANKS) ** -profile.mid_power)
    head = np.maximum(np.rint(law).astype(int), profile.tail_from)
    tail = _log_linear(profile.tail_from, profile.tail_to, NUM_CLASSES - HEAD_RANKS)
    counts = np.concatenate([head, tail])
    if head[-1] <= tail[0]:  # ranks 301..365 must be exactly the 65 rarest classes
        counts[:HEAD_RANKS] += 1
    return counts


def _rng(seed: int, tag: int) -> np.random.Generator:
    """An independent stream per purpose, so resizing one split never changes another."""
    return np.random.default_rng([int(seed), tag])


def build_categories(seed: int) -> tuple[list[dict], dict[int, int]]:
    """The 365 categories (ids 1..365 in name order) and their planned ranks.

    Names are "colour texture shape" compositions; ``supercategory`` is the shape. Which of the
    8*8*6 = 384 compositions are left out is fixed; ranks and styles depend on ``seed``.
    """
    combos = list(itertools.product(SHAPES, COLOURS, TEXTURES))
    dropped = set(np.random.default_rng(365).choice(len(combos), len(combos) - NUM_CLASSES, replace=False))
    combos = [c for i, c in enumerate(combos) if i not in dropped]
    rng = _rng(seed, 1)
    order = rng.permutation(NUM_CLASSES)  # order[rank - 1] = index of the category holding that rank
    ranking = {int(order[r]) + 1: r + 1 for r in range(NUM_CLASSES)}
    # styles: the tail gets an exact 13/13/39 mix of hard (small, clustered) and easy (large, plain)
    tail = ["small_clustered"] * 13 + ["large_plain"] * 13 + ["normal"] * 39
    tail = [tail[i] for i in rng.permutation(len(tail))]
    head = rng.choice(STYLES, size=HEAD_RANKS, p=[0.7, 0.15, 0.15]).tolist()
    # large objects in the head too (ranks 11+, at most ~250 instances each, so image counts stay
    # small): a detector that only ever sees large boxes in rare classes learns "large = background"
    # and scores every large class zero (measured: AP 0 for all 35 large classes with v4's plan)
    head = ["normal" if r < LARGE_FROM_RANK - 1 and s == "large_plain" else s for r, s in enumerate(head)]
    style_by_rank = head + tail
    categories = []
    for idx, (shape, colour, texture) in enumerate(combos):
        cid = idx + 1
        categories.append({"id": cid, "name": f"{colour} {texture} {shape}", "supercategory": shape,
                           "shape": shape, "colour": colour, "texture": texture,
                           "style": style_by_rank[ranking[cid] - 1]})
    return categories, ranking


def _instance_size(rng: np.random.Generator, shape: str, style: str, image_size: int,
                   scale: float = 1.0) -> tuple[int, int]:
    if style == "small_clustered":  # the hard style keeps its sizes: it is already near the stride
        scale = 1.0
    lo, hi = (scale * side for side in _SIZES[style])
    side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    aspect = SHAPE_ASPECT[shape] * float(np.exp(rng.uniform(-0.12, 0.12)))
    w = int(np.clip(round(side * np.sqrt(aspect)), 4, image_size - 2))
    h = int(np.clip(round(side / np.sqrt(aspect)), 4, image_size - 2))
    return w, h


def _fits(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    """Mild overlap only: at most 25% of the smaller box may be covered."""
    x, y, w, h = box
    for px, py, pw, ph in placed:
        iw = min(x + w, px + pw) - max(x, px)
        ih = min(y + h, py + ph) - max(y, py)
        if iw > 0 and ih > 0 and iw * ih > 0.25 * min(w * h, pw * ph):
            return False
    return True


def _place_group(rng, group, cats, size, placed, tries=25, scale=1.0):
    """Positions for one group (a cluster or a single instance) in an image, or None."""
    cid, n = group
    cat = cats[cid]
    boxes: list[tuple[int, int, int, int]] = []
    centre = rng.uniform(0.2, 0.8, size=2) * size
    for _ in range(n):
        w, h = _instance_size(rng, cat["shape"], cat["style"], size, scale)
        for _ in range(tries):
            if cat["style"] == "small_clustered":  # near the cluster centre
                x = int(np.clip(round(centre[0] + rng.normal(0, 9) - w / 2), 0, size - w))
                y = int(np.clip(round(centre[1] + rng.normal(0, 9) - h / 2), 0, size - h))
            else:
                x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if _fits((x, y, w, h), placed + boxes):
                boxes.append((x, y, w, h))
                break
        else:
            return None
    return boxes


def layout_images(rng, counts: dict[int, int], cats: dict[int, dict], *, image_size: int, min_objects: int,
                  max_objects: int, size_scale: float = 1.0) -> list[list]:
    """Pack the instances of every class into images: a list of images, each a list of (cid, box).

    ``cats[cid]`` needs ``shape`` and ``style`` (one of :data:`STYLES`); an image is closed once it
    holds ``min_objects..max_objects`` objects (drawn per image).
    """
    groups = []
    for cid in sorted(counts):
        n = counts[cid]
        while n > 0:
            k = min(n, int(rng.integers(3, 7))) if cats[cid]["style"] == "small_clustered" else 1
            groups.append((cid, k))
            n -= k
    groups = [groups[i] for i in rng.permutation(len(groups))]
    images: list[list] = []
    current: list = []
    lo, hi, scale = min_objects, max_objects + 1, size_scale
    target = int(rng.integers(lo, hi))
    for group in groups:
        boxes = None
        if len(current) + group[1] <= max_objects:
            boxes = _place_group(rng, group, cats, image_size, [b for _, b in current], scale=scale)
        if boxes is None:  # start a new image; an empty image always takes one group
            images.append(current)
            current, target = [], int(rng.integers(lo, hi))
            boxes = _place_group(rng, group, cats, image_size, [], tries=1000, scale=scale)
            if boxes is None:  # pragma: no cover - a cluster of <= 6 small boxes always fits
                raise RuntimeError(f"could not place {group} in an empty image")
        current.extend((group[0], b) for b in boxes)
        if len(current) >= target:
            images.append(current)
            current, target = [], int(rng.integers(lo, hi))
    images.append(current)
    return [img for img in images if img]


def coco_records(layout: list[list], *, prefix: str, image_size: int, first_image: int = 1,
                 first_annotation: int = 1) -> tuple[list[dict], list[dict]]:
    """COCO ``images`` and ``annotations`` of a :func:`layout_images` layout, ids counted on from
    ``first_image`` / ``first_annotation``; file names ``{prefix}_{image id:06d}.png``."""
    images, annotations = [], []
    image_id, ann_id = first_image, first_annotation
    for objects in layout:
        images.append({"id": image_id, "file_name": f"{prefix}_{image_id:06d}.png",
                       "width": image_size, "height": image_size})
        for cid, (x, y, w, h) in objects:
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": cid,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            ann_id += 1
        image_id += 1
    return images, annotations


def _eval_counts(train: dict[int, int], profile: SyntheticProfile) -> dict[int, int]:
    total = sum(train.values())
    return {cid: profile.eval_min_per_class + round(profile.eval_extra * n / total) for cid, n in train.items()}


def plan_dataset(profile: str | SyntheticProfile = "default", seed: int = 0) -> SyntheticPlan:
    """Plan every split of the synthetic data set; deterministic in ``(profile, seed)``."""
    name = profile if isinstance(profile, str) else "custom"
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown synthetic profile {profile!r}; known: {sorted(PROFILES)}")
        profile = PROFILES[profile]
    categories, ranking = build_categories(seed)
    cats = {c["id"]: c for c in categories}
    n_train = train_counts(profile)
    train = {cid: int(n_train[ranking[cid] - 1]) for cid in cats}
    # re-rank equal counts by smaller id, so the plan's ranking equals class_ranks(train split)
    by_rank = sorted(cats, key=lambda cid: (-train[cid], cid))
    ranking = {cid: rank for rank, cid in enumerate(by_rank, start=1)}
    tiny_ids = by_rank[TINY_RANKS[0] - 1:TINY_RANKS[1]]
    tiny_n = _log_linear(profile.tiny_train_from, profile.tiny_train_to, len(tiny_ids))
    split_counts = {
        "train": train,
        "val": _eval_counts(train, profile),
        "test": _eval_counts(train, profile),
        "tiny_train": {cid: int(n) for cid, n in zip(tiny_ids, tiny_n)},
        "tiny_val": {cid: profile.tiny_eval_per_class for cid in tiny_ids},
        "tiny_test": {cid: profile.tiny_eval_per_class for cid in tiny_ids},
    }
    splits: dict[str, dict] = {}
    next_image, next_ann = 1, 1
    for tag, split in enumerate(SPLITS, start=10):
        rng = _rng(seed, tag)
        split_cats = categories if not split.startswith("tiny") else [cats[c] for c in sorted(tiny_ids)]
        if split in ("val", "test", "tiny_val", "tiny_test"):  # list order differs from train, like Objects365 V1
            split_cats = [split_cats[i] for i in rng.permutation(len(split_cats))]
        layout = layout_images(rng, split_counts[split], cats, image_size=profile.image_size,
                               min_objects=profile.min_objects, max_objects=profile.max_objects,
                               size_scale=profile.size_scale)
        images, annotations = coco_records(layout, prefix=split, image_size=profile.image_size,
                                           first_image=next_image, first_annotation=next_ann)
        next_image, next_ann = next_image + len(images), next_ann + len(annotations)
        splits[split] = {
            "info": {"description": "o365lib synthetic long-tailed detection data", "profile": name,
                     "seed": int(seed), "split": split},
            "images": images, "annotations": annotations, "categories": [dict(c) for c in split_cats],
        }
    return SyntheticPlan(profile=name, seed=int(seed), image_size=profile.image_size,
                         categories=categories, ranking=ranking, splits=splits)
