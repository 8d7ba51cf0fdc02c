"""The synthetic long-tailed data set: the plan's statistics, rendering, determinism and caching."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from o365lib.data import class_ranks, imbalance_table, load_coco, parse_class_range, ranks_to_category_ids
from o365lib.data.synthetic import (
    GENERATOR_VERSION,
    PROFILES,
    SyntheticPaths,
    _cache_ok,
    make_dataset,
    plan_dataset,
    train_counts,
)
from o365lib.data.synthetic_render import (
    COLOURS,
    PRETRAIN_SHAPES,
    SHAPES,
    TEXTURES,
    _coverage,
    encode_png,
    render_image,
)

TINY_SPLITS = ("tiny_train", "tiny_val", "tiny_test")


@pytest.fixture(scope="module")
def default_plan():
    return plan_dataset("default", seed=0)


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> SyntheticPaths:
    return make_dataset(tmp_path_factory.mktemp("smoke_a") / "synthetic", "smoke", 0)


def _per_class(split: dict) -> Counter:
    return Counter(a["category_id"] for a in split["annotations"])


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- the plan (no pixels)

def test_train_counts_shape():
    counts = train_counts(PROFILES["default"])
    assert len(counts) == 365 and np.all(np.diff(counts) <= 0)
    # head 10000 / r^1.6 (rank 2: 3299), middle 25 * (r / 300)^-0.75 (rank 150: 42.04), whichever is larger
    assert counts[0] == 10_000 and counts[1] == 3299 and counts[9] == 320 and counts[149] == 42
    assert counts[299] == 25 and counts[300] == 22 and counts[-1] == 10
    assert np.all((counts[300:] >= 10) & (counts[300:] <= 22))
    assert counts.sum() == 36_956
    assert counts[0] / counts[-1] >= 1000 and counts.min() >= 10  # every class learnable, Objects365's max/min


def test_default_plan_categories(default_plan):
    cats = default_plan.categories
    assert [c["id"] for c in cats] == list(range(1, 366))
    assert len({c["name"] for c in cats}) == 365
    assert len({(c["shape"], c["colour"], c["texture"]) for c in cats}) == 365
    for c in cats:
        assert c["name"] == f"{c['colour']} {c['texture']} {c['shape']}" and c["supercategory"] == c["shape"]
        assert c["shape"] in SHAPES and c["colour"] in COLOURS and c["texture"] in TEXTURES
    styles = Counter(c["style"] for c in cats if default_plan.ranking[c["id"]] > 300)
    assert styles == {"normal": 39, "small_clustered": 13, "large_plain": 13}
    # large objects occur in frequent classes too (else a detector learns "large = background"),
    # but never in the ten most frequent ones (their image counts would explode)
    large_ranks = sorted(default_plan.ranking[c["id"]] for c in cats if c["style"] == "large_plain")
    assert large_ranks[0] >= 11 and sum(r <= 150 for r in large_ranks) >= 10


def test_default_plan_long_tail(default_plan):
    train = default_plan.splits["train"]
    per_class = _per_class(train)
    assert len(per_class) == 365
    assert class_ranks(train) == default_plan.ranking  # the plan's ranks are the data's ranks
    by_rank = sorted(per_class.values(), reverse=True)
    assert by_rank[0] == 10_000 and max(by_rank) / min(by_rank) >= 1000
    assert all(10 <= n <= 22 for n in by_rank[300:])
    assert 4200 <= len(train["images"]) <= 5000 and len(train["annotations"]) == 36_956
    assert len(train["annotations"]) / len(train["images"]) >= 7.5  # dense (Objects365: ~15 per image)
    table = imbalance_table(train, name="synthetic")
    assert table["synthetic"].tolist() == [10_000, 10, 1000]


def test_category_id_order_is_not_rank_order(default_plan):
    ranked = ranks_to_category_ids(range(1, 366), default_plan.ranking)
    assert ranked != sorted(ranked)
    assert sum(cid == rank for rank, cid in enumerate(ranked, start=1)) < 10


def test_eval_splits_cover_every_class(default_plan):
    for split in ("val", "test"):
        data = default_plan.splits[split]
        per_class = _per_class(data)
        assert len(per_class) == 365 and min(per_class.values()) == 10  # at least 10 val instances per class
        assert len(data["annotations"]) == sum(10 + round(400 * n / 36_956) for n in train_counts(PROFILES["default"]))
        assert 450 <= len(data["images"]) <= 700  # a small val split: cheap inference
    train_order = [c["id"] for c in default_plan.splits["train"]["categories"]]
    val_order = [c["id"] for c in default_plan.splits["val"]["categories"]]
    assert train_order == sorted(train_order) and val_order != train_order and sorted(val_order) == train_order


def test_tiny_track(default_plan):
    tail_ids = set(ranks_to_category_ids(parse_class_range("301-365", 365), default_plan.ranking))
    full = {c["id"]: c for c in default_plan.categories}
    for split in TINY_SPLITS:
        data = default_plan.splits[split]
        assert {c["id"] for c in data["categories"]} == tail_ids
        assert all(c == full[c["id"]] for c in data["categories"])  # same ids, names, extras
        per_class = _per_class(data)
        assert set(per_class) == tail_ids
        assert min(per_class.values()) >= (15 if split == "tiny_train" else 10)
    tiny_train = _per_class(default_plan.splits["tiny_train"])
    assert max(tiny_train.values()) == 70 and min(tiny_train.values()) == 18
    assert 2000 <= sum(tiny_train.values()) <= 3000


def test_layout_invariants(default_plan):
    image_ids, ann_ids, names = set(), set(), set()
    for split, data in default_plan.splits.items():
        per_image = Counter(a["image_id"] for a in data["annotations"])
        assert set(per_image) == {img["id"] for img in data["images"]}  # no empty images
        assert 1 <= min(per_image.values()) and max(per_image.values()) <= PROFILES["default"].max_objects
        for img in data["images"]:
            assert img["id"] not in image_ids and img["file_name"] not in names
            assert img["file_name"].startswith(split + "_") and (img["width"], img["height"]) == (128, 128)
            image_ids.add(img["id"])
            names.add(img["file_name"])
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["id"] not in ann_ids and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
            assert w >= 4 and h >= 4 and ann["area"] == w * h and ann["iscrowd"] == 0
            ann_ids.add(ann["id"])


def test_hard_and_easy_tail_styles(default_plan):
    """Small clustered classes put several small boxes in one image; large plain ones one big box."""
    cats = {c["id"]: c for c in default_plan.categories}
    train = default_plan.splits["train"]
    sides: dict[str, list[int]] = {"small_clustered": [], "large_plain": [], "normal": []}
    per_image_class = Counter((a["image_id"], a["category_id"]) for a in train["annotations"])
    for ann in train["annotations"]:
        sides[cats[ann["category_id"]]["style"]].append(np.sqrt(ann["bbox"][2] * ann["bbox"][3]))
    assert max(sides["small_clustered"]) <= 13.5 and min(sides["large_plain"]) >= 50
    assert np.median(sides["normal"]) > np.median(sides["small_clustered"]) * 2
    clustered = [n for (_, cid), n in per_image_class.items() if cats[cid]["style"] == "small_clustered"]
    assert np.mean(clustered) >= 2.5
    large = [n for (_, cid), n in per_image_class.items() if cats[cid]["style"] == "large_plain"]
    assert max(large) <= 2


def test_plan_is_deterministic_and_seed_dependent():
    a, b, c = plan_dataset("smoke", 0), plan_dataset("smoke", 0), plan_dataset("smoke", 1)
    assert a.splits == b.splits and a.ranking == b.ranking
    assert a.ranking != c.ranking
    assert [c["name"] for c in a.categories] == [c["name"] for c in c.categories]  # the vocabulary is fixed


def test_smoke_plan_sizes():
    plan = plan_dataset("smoke", 0)
    sizes = {s: (len(d["images"]), len(d["annotations"])) for s, d in plan.splits.items()}
    assert sizes == {"train": (297, 1577), "val": (158, 730), "test": (157, 730), "tiny_train": (87, 331),
                     "tiny_val": (31, 130), "tiny_test": (39, 130)}
    assert min(_per_class(plan.splits["val"]).values()) >= 2
    assert len(_per_class(plan.splits["train"])) == 365 and len(_per_class(plan.splits["tiny_train"])) == 65


def test_unknown_profile_and_bad_seed(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic profile 'huge'"):
        plan_dataset("huge")
    with pytest.raises(ValueError, match="unknown synthetic profile"):
        make_dataset(tmp_path / "x", "huge")
    with pytest.raises(ValueError, match="seed"):
        make_dataset(tmp_path / "x", "smoke", seed=-1)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- rendering

@pytest.mark.parametrize("shape", SHAPES + PRETRAIN_SHAPES)
@pytest.mark.parametrize("texture", ["solid", "hollow"])
def test_every_shape_touches_its_box(shape, texture):
    cov = _coverage(shape, texture, 30, 24)[..., 0]
    assert cov.shape == (24, 30) and 0.0 <= cov.min() and cov.max() <= 1.0
    for edge in (cov[0], cov[-1], cov[:, 0], cov[:, -1]):
        assert edge.max() > 0.1, f"{shape} does not reach an edge of its box"


def test_shapes_are_distinct():
    masks = {s: _coverage(s, "solid", 32, 32)[..., 0] > 0.5 for s in SHAPES + PRETRAIN_SHAPES if s != "bar"}
    for (a, mask_a), (b, mask_b) in itertools.combinations(masks.items(), 2):
        assert (mask_a != mask_b).mean() > 0.08, (a, b)


def test_pretraining_shapes_are_not_detection_shapes():
    assert len(PRETRAIN_SHAPES) == 8 and not set(PRETRAIN_SHAPES) & set(SHAPES)


def test_polygon_masks_match_their_area():
    """Even-odd polygon fill against the shoelace area (hexagon: 3, tee: 2.6 of the 4 of its box)."""
    for shape, area in (("hexagon", 3.0), ("tee", 0.6 * 2 + 0.6 * 1.4), ("hourglass", 2.24)):
        fraction = float(_coverage(shape, "solid", 120, 120).mean())
        assert abs(fraction - area / 4) < 0.01, (shape, fraction)


def test_render_is_deterministic_and_draws_objects():
    objects = [("circle", "red", "solid", [10, 10, 40, 40]), ("bar", "blue", "striped", [60, 80, 50, 20])]
    a = render_image(size=128, seed=[0, 7, 1], objects=objects)
    b = render_image(size=128, seed=[0, 7, 1], objects=objects)
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3) and np.array_equal(a, b)
    assert a[30, 30, 0] > 180 and a[30, 30, 2] < 80  # red disc centre
    bar = a[80:100, 60:110].reshape(-1, 3).astype(int)
    assert (bar[:, 2] > 180).mean() > 0.3 and (bar[:, 2] < 100).mean() > 0.2  # blue with dark stripes
    assert encode_png(a) == encode_png(b)
    assert not np.array_equal(a, render_image(size=128, seed=[0, 7, 2], objects=objects))


# ---------------------------------------------------------------- files on disk, determinism, cache

def test_smoke_files_load_and_map_by_id(smoke_dir):
    assert sorted(p.name for p in smoke_dir.root.iterdir()) == sorted(
        ["images", "manifest.json", "train.json", "val.json", "test.json", "tiny_train.json", "tiny_val.json",
         "tiny_test.json"])
    train = load_coco(smoke_dir.train, check_images="eager")
    val = load_coco(smoke_dir.val, check_images="eager")
    assert train.image_root == smoke_dir.images and train.num_clipped == 0
    assert val.label_map == train.label_map and train.label_map.num_classes == 365
    tiny = load_coco(smoke_dir.tiny_val, check_images="eager")
    assert tiny.label_map.num_classes == 65
    img_id = train.image_ids[0]
    with Image.open(train.image_path(img_id, must_exist=True)) as img:
        assert img.size == (128, 128) and img.mode == "RGB"
    raw = smoke_dir.train.read_bytes()
    assert raw == (json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")) + "\n").encode()


def test_two_generations_are_byte_identical(smoke_dir, tmp_path):
    other = make_dataset(tmp_path / "b", "smoke", 0)
    assert _tree_digest(other.root) == _tree_digest(smoke_dir.root)
    manifest = json.loads(other.manifest.read_text())
    assert manifest["profile"] == "smoke" and manifest["seed"] == 0 and manifest["version"] == GENERATOR_VERSION
    assert len(manifest["images"]) == 297 + 158 + 157 + 87 + 31 + 39


def test_cache_is_reused(smoke_dir):
    stamp = {p: p.stat().st_mtime_ns for p in (smoke_dir.train, smoke_dir.manifest)}
    again = make_dataset(smoke_dir.root, "smoke", 0)
    assert again == smoke_dir
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_partial_or_corrupt_cache_is_regenerated(smoke_dir, tmp_path):
    shutil.copytree(smoke_dir.root, tmp_path / "d")
    paths = SyntheticPaths.under(tmp_path / "d")
    sorted(paths.images.iterdir())[5].unlink()
    paths.val.write_text("{}")
    assert make_dataset(tmp_path / "d", "smoke", 0) == paths
    assert _tree_digest(paths.root) == _tree_digest(smoke_dir.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # temporary folders are gone


def test_cache_check_rejects_bad_manifests(smoke_dir, tmp_path):
    params = asdict(PROFILES["smoke"])
    assert _cache_ok(smoke_dir, profile="smoke", seed=0, params=params)
    assert not _cache_ok(smoke_dir, profile="smoke", seed=1, params=params)
    assert not _cache_ok(smoke_dir, profile="default", seed=0, params=params)
    shutil.copytree(smoke_dir.root, tmp_path / "d")
    paths = SyntheticPaths.under(tmp_path / "d")
    paths.manifest.write_text("not json")
    assert not _cache_ok(paths, profile="smoke", seed=0, params=params)
    paths.manifest.unlink()
    assert not _cache_ok(paths, profile="smoke", seed=0, params=params)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="no manifest.json"):
        make_dataset(tmp_path / "mine", "smoke", 0)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"]


@pytest.mark.slow
def test_process_pool_gives_identical_files(smoke_dir, tmp_path):
    pooled = make_dataset(tmp_path / "p", "smoke", 0, workers=2)
    assert _tree_digest(pooled.root) == _tree_digest(smoke_dir.root)


@pytest.mark.slow
def test_default_profile_generates(tmp_path):
    paths = make_dataset(tmp_path / "default", "default", 0)
    train = load_coco(paths.train, check_images="eager")
    assert len(train.images) == len(plan_dataset("default", 0).splits["train"]["images"])
    counts = Counter(a["category_id"] for a in train.dataset["annotations"])
    assert len(counts) == 365 and max(counts.values()) / min(counts.values()) >= 1000
    for split, least in (("val", 10), ("test", 10), ("tiny_val", 10), ("tiny_test", 10)):
        data = load_coco(getattr(paths, split), check_images="eager")
        assert min(Counter(a["category_id"] for a in data.dataset["annotations"]).values()) == least
