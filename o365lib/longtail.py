"""Long-tail samplers: which training images an epoch visits, and how often.

The ByteDance talk fights Objects365's long tail (75746x between its largest and smallest class) with data
resampling. Four samplers share one interface so that the training engine and the chapters can
swap them by name (``build_sampler``):

- ``UniformSampler``: every image once per epoch (the baseline).
- ``RepeatFactorSampler`` + ``repeat_factors``: LVIS / detectron2 repeat-factor sampling. For a
  class c, f(c) is the fraction of training images containing c and r(c) = max(1, sqrt(t / f(c)))
  (or t / f(c) with ``sqrt=False``); an image's factor is the max over its classes (1.0 for an
  image with no annotation). Each epoch image i appears floor(r_i) times plus once more with
  probability frac(r_i) (stochastic rounding), so the expected epoch length is sum(r_i).
- ``ClassAwareSampler``: each draw picks a class uniformly, then an image containing it uniformly.
- ``HeadDownsampleSampler``: the talk's "down-sample classes with huge number of instances" (see
  the class docstring for the exact rule).

Every sampler is a pure function of ``(seed, epoch)``: ``epoch_indices(epoch)`` returns the full,
unsharded epoch, so training resumes mid-run by asking for the same epoch again, and every DDP
rank computes the same list and keeps its own strided ``shard`` of it (no communication needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from o365lib.data.stats import image_category_ids as image_category_ids_from_coco

__all__ = [
    "SAMPLERS",
    "ClassAwareSampler",
    "HeadDownsampleSampler",
    "RepeatFactorSampler",
    "UniformSampler",
    "build_sampler",
    "effective_class_distribution",
    "image_category_ids_from_coco",
    "repeat_factors",
    "shard",
]


def shard(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s strided share of an epoch: ``padded[rank::world_size]``.

    The epoch is padded by wrap-around (its first entries repeated) to a multiple of
    ``world_size``, so all ranks get the same number of items (DDP needs equal step counts) and the
    shards are disjoint slices of the padded list that together cover every index.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    indices = list(indices)
    if not indices:
        return []
    total = math.ceil(len(indices) / world_size) * world_size
    padded = (indices * math.ceil(total / len(indices)))[:total]
    return padded[rank::world_size]


def _rng(seed: int, epoch: int) -> np.random.Generator:
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch)])))


def _unique_classes(image_category_ids: Sequence[Sequence[int]]) -> list[set[int]]:
    return [{int(c) for c in cats} for cats in image_category_ids]


class _EpochSampler:
    """Shared parts: seed, ``shard``, iteration over epoch 0 (``set_epoch`` changes it)."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.epoch = 0

    def epoch_indices(self, epoch: int) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def shard(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
        return shard(indices, rank, world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(self.epoch_indices(self.epoch))


class UniformSampler(_EpochSampler):
    """Every image exactly once per epoch, shuffled (or in order with ``shuffle=False``)."""

    def __init__(self, num_images: int, seed: int = 0, shuffle: bool = True):
        super().__init__(seed)
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        self.num_images, self.shuffle = int(num_images), bool(shuffle)

    def epoch_indices(self, epoch: int) -> list[int]:
        rng = _rng(self.seed, epoch)
        order = rng.permutation(self.num_images) if self.shuffle else np.arange(self.num_images)
        return order.tolist()

    def __len__(self) -> int:
        return self.num_images


def repeat_factors(image_category_ids: Sequence[Sequence[int]], threshold: float, sqrt: bool = True) -> list[float]:
    """Per-image repeat factors (LVIS / detectron2 definition, see the module docstring).

    ``image_category_ids``: one list of category ids per image (repeats allowed); ``threshold`` t
    in (0, 1]: classes present in fewer than a fraction t of the images get repeated.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"repeat_factors: threshold must be in (0, 1], got {threshold}")
    classes = _unique_classes(image_category_ids)
    num_images = len(classes)
    counts: dict[int, int] = {}
    for cats in classes:
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    class_factor = {}
    for c, n in counts.items():
        ratio = threshold / (n / num_images)
        class_factor[c] = max(1.0, math.sqrt(ratio) if sqrt else ratio)
    return [max((class_factor[c] for c in cats), default=1.0) for cats in classes]


class RepeatFactorSampler(_EpochSampler):
    """Image i appears floor(r_i) + Bernoulli(frac(r_i)) times per epoch; expected length sum(r)."""

    def __init__(self, factors: Sequence[float], seed: int = 0, shuffle: bool = True):
        super().__init__(seed)
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 1 or not np.all(np.isfinite(factors)) or np.any(factors < 0):
            raise ValueError("RepeatFactorSampler: factors must be a 1-D list of finite numbers >= 0")
        self.factors, self.shuffle = factors, bool(shuffle)
        self.expected_length = float(factors.sum())

    def epoch_indices(self, epoch: int) -> list[int]:
        rng = _rng(self.seed, epoch)
        whole = np.floor(self.factors)
        reps = whole.astype(np.int64) + (rng.random(len(self.factors)) < self.factors - whole)
        indices = np.repeat(np.arange(len(self.factors)), reps)
        return (rng.permutation(indices) if self.shuffle else indices).tolist()

    def __len__(self) -> int:
        return round(self.expected_length)


class ClassAwareSampler(_EpochSampler):
    """Draw a class uniformly among the classes present, then an image containing it uniformly.

    ``num_samples`` draws per epoch (default: the number of images). Images with no annotation
    are never drawn. Draws are independent (with replacement), so P(class c) = 1 / #classes.
    """

    def __init__(self, image_category_ids: Sequence[Sequence[int]], num_samples: int | None = None,
                 seed: int = 0):
        super().__init__(seed)
        classes = _unique_classes(image_category_ids)
        images_of: dict[int, list[int]] = {}
        for i, cats in enumerate(classes):
            for c in cats:
                images_of.setdefault(c, []).append(i)
        if not images_of:
            raise ValueError("ClassAwareSampler: no image has an annotation")
        self.class_ids = sorted(images_of)
        self._counts = np.array([len(images_of[c]) for c in self.class_ids], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
        self._images = np.concatenate([np.asarray(images_of[c], dtype=np.int64) for c in self.class_ids])
        self.num_samples = len(classes) if num_samples is None else int(num_samples)
        if self.num_samples < 0:
            raise ValueError(f"ClassAwareSampler: num_samples must be >= 0, got {num_samples}")

    def epoch_indices(self, epoch: int) -> list[int]:
        rng = _rng(self.seed, epoch)
        cls = rng.integers(len(self.class_ids), size=self.num_samples)
        within = np.floor(rng.random(self.num_samples) * self._counts[cls]).astype(np.int64)
        return self._images[self._offsets[cls] + within].tolist()

    def __len__(self) -> int:
        return self.num_samples


class HeadDownsampleSampler(_EpochSampler):
    """Drop part of the images that only show very frequent ("head") classes, each epoch anew.

    Rule (counts are *images* containing a class, since an image is the unit we sample):

    - a class c is a head class when n(c) > ``cap``; its keep rate is p(c) = cap / n(c);
    - an image containing at least one non-head class is always kept (tail objects are never
      thrown away);
    - an image whose classes are all head classes is kept with probability min over its classes
      of p(c) (the most over-represented class decides); an image with no annotation is kept.

    A head class seen only in head-only images thus keeps cap images per epoch in expectation;
    one that shares images with tail classes keeps more (those images always stay). The exact
    expectation, sum over images containing c of their keep probability, is given by
    ``expected_image_counts()``; the epoch length is random with mean ``expected_length``.
    """

    def __init__(self, image_category_ids: Sequence[Sequence[int]], cap: int, seed: int = 0,
                 shuffle: bool = True):
        super().__init__(seed)
        if cap < 1:
            raise ValueError(f"HeadDownsampleSampler: cap must be >= 1, got {cap}")
        self.cap, self.shuffle = int(cap), bool(shuffle)
        self._classes = _unique_classes(image_category_ids)
        counts: dict[int, int] = {}
        for cats in self._classes:
            for c in cats:
                counts[c] = counts.get(c, 0) + 1
        self.image_counts = counts
        self.head_classes = sorted(c for c, n in counts.items() if n > self.cap)
        rate = {c: self.cap / counts[c] for c in self.head_classes}
        self.keep_prob = np.array(
            [min(rate[c] for c in cats) if cats and all(c in rate for c in cats) else 1.0
             for cats in self._classes], dtype=np.float64)
        self.expected_length = float(self.keep_prob.sum())

    def expected_image_counts(self) -> dict[int, float]:
        """Class id -> expected number of kept images containing it, per epoch."""
        out = dict.fromkeys(self.image_counts, 0.0)
        for p, cats in zip(self.keep_prob, self._classes):
            for c in cats:
                out[c] += float(p)
        return out

    def epoch_indices(self, epoch: int) -> list[int]:
        rng = _rng(self.seed, epoch)
        kept = np.nonzero(rng.random(len(self.keep_prob)) < self.keep_prob)[0]
        return (rng.permutation(kept) if self.shuffle else kept).tolist()

    def __len__(self) -> int:
        return round(self.expected_length)


_BUILDERS = {
    "uniform": lambda ids, seed, shuffle=True: UniformSampler(len(ids), seed=seed, shuffle=shuffle),
    "repeat_factor": lambda ids, seed, threshold=0.001, sqrt=True, shuffle=True: RepeatFactorSampler(
        repeat_factors(ids, threshold, sqrt=sqrt), seed=seed, shuffle=shuffle),
    "class_aware": lambda ids, seed, num_samples=None: ClassAwareSampler(ids, num_samples, seed=seed),
    "head_downsample": lambda ids, seed, cap, shuffle=True: HeadDownsampleSampler(
        ids, cap, seed=seed, shuffle=shuffle),
}
#: The sampler names :func:`build_sampler` knows (the profile schema checks against these).
SAMPLERS = tuple(_BUILDERS)


def build_sampler(name: str, image_category_ids: Sequence[Sequence[int]], *, seed: int = 0, **options):
    """A sampler by name. Options: uniform (shuffle), repeat_factor (threshold=0.001, sqrt, shuffle),
    class_aware (num_samples), head_downsample (cap [required], shuffle)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(_BUILDERS)}")
    try:
        return _BUILDERS[name](image_category_ids, seed, **options)
    except TypeError as err:
        raise TypeError(f"build_sampler({name!r}): bad options {sorted(options)}: {err}") from None


def effective_class_distribution(sampler, image_category_ids: Sequence[Sequence[int]], *,
                                 epochs: int = 1) -> dict[int, float]:
    """Class id -> images containing it drawn per epoch, averaged over epochs 0..epochs-1.

    Counts the actual draws (an image drawn twice counts twice); classes never drawn get 0.0.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    classes = _unique_classes(image_category_ids)
    class_ids = sorted(set().union(*classes)) if classes else []
    column = {c: k for k, c in enumerate(class_ids)}
    pair_image = np.array([i for i, cats in enumerate(classes) for _ in cats], dtype=np.int64)
    pair_class = np.array([column[c] for cats in classes for c in cats], dtype=np.int64)
    total = np.zeros(len(class_ids))
    for epoch in range(epochs):
        draws = np.bincount(np.asarray(sampler.epoch_indices(epoch), dtype=np.int64), minlength=len(classes))
        total += np.bincount(pair_class, weights=draws[pair_image], minlength=len(class_ids))
    return {c: float(total[k] / epochs) for c, k in column.items()}

