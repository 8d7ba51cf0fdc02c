"""Tests for o365lib.longtail: repeat factors, samplers, determinism, DDP shards."""

import math
from collections import Counter

import numpy as np
import pytest

from o365lib.longtail import (
    ClassAwareSampler,
    HeadDownsampleSampler,
    RepeatFactorSampler,
    UniformSampler,
    build_sampler,
    effective_class_distribution,
    image_category_ids_from_coco,
    repeat_factors,
    shard,
)

# 10 images: class 1 in 8 images, class 2 in 3, class 3 in 1, image 8 empty
HAND = [[1, 1], [1], [1], [1], [1], [1], [1, 2], [1, 2, 3], [], [2, 2, 2]]


def random_image_classes(seed, num_images=400, num_classes=30):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_classes + 1) ** 1.5  # long tail
    weights /= weights.sum()
    out = []
    for _ in range(num_images):
        n = int(rng.integers(0, 5))
        out.append([int(c) + 1 for c in rng.choice(num_classes, size=n, p=weights)])
    return out


def test_repeat_factors_closed_form():
    # f(1)=8/10, f(2)=3/10, f(3)=1/10 with t=0.5
    r = repeat_factors(HAND, 0.5)
    r2, r3 = math.sqrt(0.5 / 0.3), math.sqrt(0.5 / 0.1)
    expected = [1.0] * 6 + [r2, r3, 1.0, r2]
    assert r == pytest.approx(expected, abs=1e-12)
    assert r[8] == 1.0  # the image with no annotation
    lin = repeat_factors(HAND, 0.5, sqrt=False)
    assert lin[7] == pytest.approx(5.0) and lin[6] == pytest.approx(0.5 / 0.3)


def _reference_repeat_factors(image_classes, t):
    """Independent re-implementation through a dense image x class incidence matrix."""
    cats = sorted({c for cs in image_classes for c in cs})
    m = np.zeros((len(image_classes), len(cats)), dtype=bool)
    for i, cs in enumerate(image_classes):
        for c in cs:
            m[i, cats.index(c)] = True
    f = m.mean(axis=0)
    rc = np.maximum(1.0, np.sqrt(t / f))
    return np.where(m.any(axis=1), np.where(m, rc[None, :], 0).max(axis=1), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repeat_factors_random_against_reference(seed):
    data = random_image_classes(seed)
    assert repeat_factors(data, 0.05) == pytest.approx(_reference_repeat_factors(data, 0.05).tolist(), abs=1e-12)


def test_repeat_factor_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        repeat_factors(HAND, 0)


def test_repeat_factor_sampler_expected_length_and_counts():
    factors = [1.0, 2.5, 0.3, 1.75, 3.0]
    sampler = RepeatFactorSampler(factors, seed=3)
    assert len(sampler) == 9 and sampler.expected_length == pytest.approx(8.55)
    epochs = [sampler.epoch_indices(e) for e in range(4000)]
    per_image = np.zeros(5)
    for idx in epochs:
        c = Counter(idx)
        for i in range(5):
            per_image[i] += c[i]
            assert math.floor(factors[i]) <= c[i] <= math.ceil(factors[i])  # stochastic rounding
    assert per_image / 4000 == pytest.approx(factors, abs=0.03)
    assert np.mean([len(e) for e in epochs]) == pytest.approx(8.55, abs=0.03)


def test_determinism_per_seed_and_epoch():
    data = random_image_classes(0)
    for name, opts in [("uniform", {}), ("repeat_factor", {"threshold": 0.1}), ("class_aware", {}),
                       ("head_downsample", {"cap": 20})]:
        a = build_sampler(name, data, seed=7, **opts)
        b = build_sampler(name, data, seed=7, **opts)
        c = build_sampler(name, data, seed=8, **opts)
        assert a.epoch_indices(3) == b.epoch_indices(3)  # resumable: same (seed, epoch) -> same list
        assert a.epoch_indices(3) != a.epoch_indices(4)
        assert a.epoch_indices(3) != c.epoch_indices(3)
        b.epoch_indices(0)  # calling order does not matter
        assert a.epoch_indices(5) == b.epoch_indices(5)


def test_pinned_uniform_epoch():
    assert UniformSampler(6, seed=0).epoch_indices(0) == UniformSampler(6, seed=0).epoch_indices(0)
    assert sorted(UniformSampler(6, seed=0).epoch_indices(1)) == list(range(6))
    assert UniformSampler(6, shuffle=False).epoch_indices(9) == list(range(6))


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (5, 8), (7, 1)])
def test_shards_disjoint_covering_equal(n, world):
    indices = list(range(100, 100 + n))
    shards = [shard(indices, r, world) for r in range(world)]
    lengths = {len(s) for s in shards}
    assert lengths == {math.ceil(n / world)}
    assert set().union(*map(set, shards)) == set(indices)  # covering
    # disjoint positions: interleaving the shards gives the padded (wrap-around) epoch
    interleaved = [s[k] for k in range(len(shards[0])) for s in shards]
    assert interleaved[:n] == indices
    assert interleaved[n:] == (indices * world)[: len(interleaved) - n]


def test_shard_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank=3"):
        shard([1, 2], 3, 3)
    assert UniformSampler(4).shard([], 0, 2) == []


def test_class_aware_uniform_over_classes():
    # class 1 in 90 images, class 2 in 9, class 3 in 1
    data = [[1]] * 90 + [[2]] * 9 + [[3]] + [[]] * 5
    sampler = ClassAwareSampler(data, num_samples=30000, seed=1)
    assert len(sampler) == 30000 and len(ClassAwareSampler(data)) == 105
    idx = sampler.epoch_indices(0)
    cls = Counter(data[i][0] for i in idx)
    for c in (1, 2, 3):
        assert cls[c] / 30000 == pytest.approx(1 / 3, abs=0.01)
    assert all(data[i] for i in idx)  # empty images never drawn
    within = Counter(i for i in idx if data[i] == [2])  # uniform over the 9 images of class 2
    assert len(within) == 9 and max(within.values()) / min(within.values()) < 1.3


def test_head_downsample_expected_counts():
    # class 1: 100 head-only single-class images + 20 images shared with tail class 3
    # class 2: 50 images, head-only; 10 of them also contain class 1 ; class 3: 20 images (tail)
    data = [[1]] * 90 + [[1, 2]] * 10 + [[2]] * 40 + [[1, 3]] * 20 + [[]] * 3
    s = HeadDownsampleSampler(data, cap=25, seed=0)
    assert s.head_classes == [1, 2] and s.image_counts == {1: 120, 2: 50, 3: 20}
    p1, p2 = 25 / 120, 25 / 50
    expected = {1: 90 * p1 + 10 * min(p1, p2) + 20, 2: 40 * p2 + 10 * min(p1, p2), 3: 20.0}
    assert s.expected_image_counts() == pytest.approx(expected)
    assert s.expected_length == pytest.approx(90 * p1 + 10 * p1 + 40 * p2 + 20 + 3)
    measured = effective_class_distribution(s, data, epochs=2000)
    for c in (1, 2, 3):
        assert measured[c] == pytest.approx(expected[c], rel=0.02)
    # tail-containing and empty images are in every epoch
    always = set(range(140, 163))
    assert all(always <= set(s.epoch_indices(e)) for e in range(20))


def test_head_downsample_single_class_reaches_cap():
    data = [[1]] * 200 + [[2]] * 10
    s = HeadDownsampleSampler(data, cap=50)
    assert s.expected_image_counts() == pytest.approx({1: 50.0, 2: 10.0})


def test_effective_distribution_uniform_and_repeat():
    data = [[1, 1, 2], [1], [3]]
    assert effective_class_distribution(UniformSampler(3), data) == {1: 2.0, 2: 1.0, 3: 1.0}
    rf = RepeatFactorSampler([1.0, 1.0, 3.0], seed=0)
    assert effective_class_distribution(rf, data, epochs=3) == {1: 2.0, 2: 1.0, 3: 3.0}


def test_build_sampler_errors():
    with pytest.raises(ValueError, match="unknown sampler 'foo'"):
        build_sampler("foo", HAND)
    with pytest.raises(TypeError, match="head_downsample"):
        build_sampler("head_downsample", HAND)  # cap missing
    s = build_sampler("repeat_factor", HAND, seed=1, threshold=0.5)
    assert s.expected_length == pytest.approx(sum(repeat_factors(HAND, 0.5)))


def test_image_category_ids_from_coco():
    ds = {"images": [{"id": 5}, {"id": 2}], "annotations": [
        {"image_id": 2, "category_id": 7}, {"image_id": 2, "category_id": 8}]}
    assert image_category_ids_from_coco(ds) == [[], [7, 8]]

