"""Tests for o365lib.experts: expert training sets, merging strategies, range picking."""

import numpy as np
import pytest

from o365lib.experts import expert_training_set, merge_experts, pick_expert_ranges


def small_train():
    # categories 10, 20, 30 with 4, 2, 1 annotations -> ranks 1, 2, 3
    images = [{"id": i, "width": 50, "height": 50, "file_name": f"{i}.png"} for i in (1, 2, 3, 4)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 10, "bbox": [0, 0, 5, 5]},
        {"id": 2, "image_id": 1, "category_id": 30, "bbox": [1, 1, 5, 5]},
        {"id": 3, "image_id": 2, "category_id": 10, "bbox": [0, 0, 5, 5]},
        {"id": 4, "image_id": 3, "category_id": 20, "bbox": [0, 0, 5, 5]},
        {"id": 5, "image_id": 3, "category_id": 10, "bbox": [2, 2, 5, 5]},
        {"id": 6, "image_id": 4, "category_id": 20, "bbox": [0, 0, 5, 5]},
        {"id": 7, "image_id": 4, "category_id": 10, "bbox": [3, 3, 5, 5]},
    ]
    cats = [{"id": c, "name": f"c{c}"} for c in (10, 20, 30)]
    return {"info": {"v": 1}, "images": images, "annotations": anns, "categories": cats}


RANKING = {10: 1, 20: 2, 30: 3}


def test_expert_training_set_background():
    out = expert_training_set(small_train(), ranks="2-3", ranking=RANKING)
    assert [img["id"] for img in out["images"]] == [1, 3, 4]
    assert [a["id"] for a in out["annotations"]] == [2, 4, 6]
    assert [c["id"] for c in out["categories"]] == [10, 20, 30]
    assert out["info"] == {"v": 1}


def test_expert_training_set_keep_and_rank_list():
    out = expert_training_set(small_train(), ranks=[3], ranking=RANKING, other_classes="keep")
    assert [img["id"] for img in out["images"]] == [1]
    assert [a["id"] for a in out["annotations"]] == [1, 2]
    with pytest.raises(ValueError, match="other_classes"):
        expert_training_set(small_train(), ranks=[3], ranking=RANKING, other_classes="drop")
    with pytest.raises(ValueError):
        expert_training_set(small_train(), ranks="3-9", ranking=RANKING)


def det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(box), "score": score}


GENERAL = [det(1, 10, (0, 0, 10, 10), 0.9), det(1, 20, (20, 20, 10, 10), 0.6),
           det(1, 30, (40, 40, 10, 10), 0.5), det(2, 20, (0, 0, 10, 10), 0.3)]
EXPERT_20 = [det(1, 20, (22, 20, 10, 10), 0.8), det(1, 10, (0, 0, 10, 10), 0.99),  # 10 is not its class
             det(2, 20, (50, 50, 5, 5), 0.7)]


def test_replace():
    out = merge_experts(GENERAL, [([20], EXPERT_20)])
    assert out == [det(1, 10, (0, 0, 10, 10), 0.9), det(1, 20, (22, 20, 10, 10), 0.8),
                   det(1, 30, (40, 40, 10, 10), 0.5), det(2, 20, (50, 50, 5, 5), 0.7)]


def test_fuse_hand_made():
    # expert box (22,20,10,10) vs general (20,20,10,10): IoU = 80/120 = 0.667 -> matched
    out = merge_experts(GENERAL, [([20], EXPERT_20)], strategy="fuse", iou_threshold=0.55)
    by_key = {(d["image_id"], d["category_id"], round(d["bbox"][0], 6)): d for d in out}
    fused = by_key[(1, 20, round((0.8 * 22 + 0.6 * 20) / 1.4, 6))]
    assert fused["score"] == pytest.approx((0.8 + 0.6) / 2)
    assert fused["bbox"][1:] == pytest.approx([20, 10, 10])
    assert by_key[(2, 20, 50.0)]["score"] == pytest.approx(0.35)  # expert alone: 0.7 / 2
    assert by_key[(2, 20, 0.0)]["score"] == pytest.approx(0.15)  # general alone: 0.3 / 2
    assert by_key[(1, 10, 0.0)]["score"] == 0.9  # not an expert class: untouched
    assert len(out) == 5
    # a stricter threshold leaves the pair unmatched
    strict = merge_experts(GENERAL, [([20], EXPERT_20)], strategy="fuse", iou_threshold=0.7)
    assert sorted(d["score"] for d in strict if d["category_id"] == 20) == pytest.approx([0.15, 0.3, 0.35, 0.4])


def test_fuse_expert_weight():
    out = merge_experts(GENERAL, [([20], EXPERT_20)], strategy="fuse", expert_weight=3.0)
    scores = sorted(d["score"] for d in out if d["category_id"] == 20)
    assert scores == pytest.approx(sorted([(3 * 0.8 + 0.6) / 4, 3 * 0.7 / 4, 0.3 / 4]))


def test_fuse_greedy_one_to_one():
    general = [det(1, 5, (0, 0, 10, 10), 0.5)]
    expert = [det(1, 5, (0, 0, 10, 10), 0.9), det(1, 5, (1, 0, 10, 10), 0.8)]
    out = merge_experts(general, [([5], expert)], strategy="fuse")
    assert [d["score"] for d in out] == pytest.approx([0.7, 0.4])  # best expert box takes the pair


def test_several_experts_and_overlap():
    e30 = [det(1, 30, (41, 40, 10, 10), 0.4)]
    out = merge_experts(GENERAL, [([20], EXPERT_20), ([30], e30)])
    assert [d["score"] for d in out if d["category_id"] == 30] == [0.4]
    with pytest.raises(ValueError, match=r"experts\[0\] and experts\[1\] both claim category ids \[20\]"):
        merge_experts(GENERAL, [([20, 30], EXPERT_20), ([20], e30)])
    first = merge_experts(GENERAL, [([20, 30], EXPERT_20), ([30, 20], e30 + [det(1, 20, (0, 0, 1, 1), 1.0)])],
                          overlap="first")
    assert [d["score"] for d in first if d["category_id"] == 20] == [0.8, 0.7]  # first expert wins
    assert [d for d in first if d["category_id"] == 30] == []  # expert 0 owns 30 and found none


def test_cap_per_image():
    rng = np.random.default_rng(0)
    general = [det(i % 3, int(rng.integers(1, 5)), (0, 0, 5, 5), float(rng.random())) for i in range(300)]
    expert = [det(i % 3, 2, (1, 1, 5, 5), float(rng.random())) for i in range(60)]
    out = merge_experts(general, [([2], expert)], max_dets=40)
    for img in range(3):
        mine = [d["score"] for d in out if d["image_id"] == img]
        assert len(mine) == 40 and mine == sorted(mine, reverse=True)
        pool = [d["score"] for d in general if d["image_id"] == img and d["category_id"] != 2]
        pool += [d["score"] for d in expert if d["image_id"] == img]
        assert mine == sorted(pool, reverse=True)[:40]


def test_empty_inputs_and_bad_args():
    assert merge_experts([], [([1], [])]) == []
    assert merge_experts(GENERAL, [], strategy="fuse") == sorted(
        GENERAL, key=lambda d: (d["image_id"], -d["score"]))
    with pytest.raises(ValueError, match="strategy"):
        merge_experts(GENERAL, [], strategy="vote")
    with pytest.raises(ValueError, match="pair"):
        merge_experts(GENERAL, [[1, 2, 3]])
    with pytest.raises(ValueError, match="general"):
        merge_experts([{"image_id": 1}], [])


def test_pick_expert_ranges_hand_made():
    # 100 classes, rank r = category id r + 1000; AP 50 except a weak band 61-90 (AP 5) and a
    # weaker short band 20-29 (AP 0); min_size 10, max_size 40
    ranking = {1000 + r: r for r in range(1, 101)}
    ap = {1000 + r: 50.0 for r in range(1, 101)}
    for r in range(61, 91):
        ap[1000 + r] = 5.0
    for r in range(20, 30):
        ap[1000 + r] = 0.0
    ap[1000 + 100] = None  # no gt: ignored
    assert pick_expert_ranges(ap, ranking, num_experts=2, min_size=10, max_size=40) == ["61-90", "20-29"]
    assert pick_expert_ranges(ap, ranking, num_experts=1, min_size=10, max_size=40) == ["61-90"]
    # max_size forces the band to be split: the best 20-long window sits inside it
    one = pick_expert_ranges(ap, ranking, num_experts=1, min_size=5, max_size=20)
    lo, hi = map(int, one[0].split("-"))
    assert hi - lo + 1 == 20 and 61 <= lo and hi <= 90
    str_keys = {str(k): v for k, v in ap.items()}
    assert pick_expert_ranges(str_keys, ranking, num_experts=2, min_size=10, max_size=40) == ["61-90", "20-29"]


def test_pick_expert_ranges_errors():
    ranking = {c: c for c in range(1, 11)}
    with pytest.raises(ValueError, match="do not fit"):
        pick_expert_ranges({c: 1.0 for c in ranking}, ranking, num_experts=2, min_size=6, max_size=8)
    with pytest.raises(ValueError, match="no class has an AP"):
        pick_expert_ranges({}, ranking, num_experts=1, min_size=2, max_size=3)




def test_fuse_random_properties():
    rng = np.random.default_rng(1)

    def random_dets(n):
        xy = rng.uniform(0, 50, size=(n, 2))
        return [det(int(rng.integers(1, 6)), int(rng.integers(1, 4)), (*xy[i], 10.0, 10.0), float(rng.random()))
                for i in range(n)]

    general, expert = random_dets(300), random_dets(200)
    out = merge_experts(general, [([2, 3], expert)], strategy="fuse", max_dets=1000)
    owned_g = [d for d in general if d["category_id"] in (2, 3)]
    owned_e = [d for d in expert if d["category_id"] in (2, 3)]
    fused = [d for d in out if d["category_id"] in (2, 3)]
    matched = len(owned_g) + len(owned_e) - len(fused)
    assert 0 < matched <= min(len(owned_g), len(owned_e))
    assert all(0 <= d["score"] <= 1 for d in fused)
    # total score mass is conserved: each input score enters once, halved (w = 1)
    assert sum(d["score"] for d in fused) == pytest.approx(
        (sum(d["score"] for d in owned_g) + sum(d["score"] for d in owned_e)) / 2)
    assert [d for d in out if d["category_id"] == 1] == sorted(
        [d for d in general if d["category_id"] == 1], key=lambda d: (d["image_id"], -d["score"]))
