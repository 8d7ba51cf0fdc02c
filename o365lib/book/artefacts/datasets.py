"""The profile's data as the chapters see it: splits, class ranking, derived training sets.

``ensure_dataset`` generates the synthetic data (through the resolver: rank 0 makes) or points at the user's
COCO / Objects365 files; ``load_split`` loads and validates one split (cached in-process by the
file's *content*, so an edited file is reloaded); ``ranking`` ranks classes by training instances;
``derived_set`` writes a training set derived from a split (e.g. an expert's subset) under a key
that includes the source file's content hash and everything that shapes the subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from o365lib import data as odata
from o365lib.book.artefacts import resolver
from o365lib.book.artefacts.keys import content_hash, key_of
from o365lib.book.config.mapping import to_mapping
from o365lib.data.synthetic import SyntheticPaths, dataset_is_current, make_dataset
from o365lib.io import write_json

SPLITS = ("train", "val", "test", "tiny_train", "tiny_val", "tiny_test")


@dataclass(frozen=True)
class DataSplits:
    """Paths of the annotation files of both tracks and the image folder of each split."""

    files: dict  # split -> Path of COCO JSON
    image_roots: dict  # split -> Path of the image folder
    source: str


_DATASETS: dict[str, DataSplits] = {}
_SPLITS: dict[tuple, object] = {}
_RANKINGS: dict[str, dict] = {}


def ensure_dataset(ctx) -> DataSplits:
    """The profile's data: generated (synthetic source, cached on disk) or the user's COCO files."""
    key = key_of(to_mapping(ctx.cfg.data))
    if key not in _DATASETS:
        _DATASETS[key] = _resolve_dataset(ctx.cfg.data, profile_dir=ctx.profile_dir)
    return _DATASETS[key]


def _resolve_dataset(cfg, *, profile_dir) -> DataSplits:
    if cfg.source == "synthetic":
        root = Path(cfg.root)
        options = {"profile": cfg.synthetic_profile, "seed": int(cfg.generator_seed)}
        paths = SyntheticPaths.under(root.resolve())
        resolver.resolve(profile_dir, kind="data", name=f"synthetic-{cfg.synthetic_profile}", path=paths.manifest,
                         make=lambda: make_dataset(root, **options), cheap=True,
                         exists=lambda _: dataset_is_current(root, **options))
        files = {split: Path(getattr(paths, split)) for split in SPLITS}
        return DataSplits(files=files, image_roots={split: Path(paths.images) for split in SPLITS}, source="synthetic")
    files, roots = {}, {}
    for split in SPLITS:
        if getattr(cfg, split):
            files[split] = Path(getattr(cfg, split))
            image_key = "tiny_images" if split.startswith("tiny") else f"{split}_images"
            roots[split] = Path(getattr(cfg, image_key) or Path(files[split]).parent)
    return DataSplits(files=files, image_roots=roots, source="coco")


def split_file(ctx, split: str) -> Path:
    """The annotation file of a split; a clear error when the profile has none."""
    splits = ensure_dataset(ctx)
    if split not in splits.files:
        raise ValueError(f"split {split!r} is not configured in profile {ctx.profile!r} (data.{split} is null)")
    return splits.files[split]


def split_hash(ctx, split: str) -> str:
    """Content hash of a split's annotation file (part of every key that depends on it)."""
    return content_hash(split_file(ctx, split))


def load_coco_file(path: Path, *, image_root: Path, data) -> object:
    """``o365lib.data.load_coco`` with the profile's data checks (``data``: its DataSection), cached by content."""
    key = (str(path), content_hash(path), str(image_root), data.box_policy, data.check_images, data.duplicates)
    if key not in _SPLITS:
        _SPLITS[key] = odata.load_coco(path, image_root=image_root, box_policy=data.box_policy,
                                       check_images=data.check_images, duplicates=data.duplicates)
    return _SPLITS[key]


def load_split(ctx, split: str):
    """Load and validate one split (``CocoData``)."""
    return load_coco_file(split_file(ctx, split), image_root=ensure_dataset(ctx).image_roots[split], data=ctx.cfg.data)


def ranking(ctx, track: str = "full") -> dict:
    """Category id -> rank by training instances of the track's training split (a fresh copy)."""
    split = "train" if track == "full" else "tiny_train"
    key = split_hash(ctx, split)
    if key not in _RANKINGS:
        _RANKINGS[key] = odata.class_ranks(load_split(ctx, split))
    return dict(_RANKINGS[key])


def range_category_ids(ctx, spec, track: str = "full") -> list[int]:
    """Category ids of a class-rank range spec such as "301-365"."""
    rank_of = ranking(ctx, track)
    return odata.ranks_to_category_ids(odata.parse_class_range(spec, len(rank_of)), rank_of)


def category_names(ctx, split: str = "train") -> dict:
    """Category id -> name of a split."""
    return {c["id"]: c["name"] for c in load_split(ctx, split).dataset["categories"]}


def derived_set(ctx, name: str, build, *, split: str = "train", depends: dict) -> Path:
    """A training set derived from ``split`` (e.g. an expert's subset), written once as COCO JSON.

    Its file name carries a key of the source file's content and ``depends`` (everything else that
    shapes the subset), so an edited source or option never reuses an old subset. ``build`` runs on
    rank 0 only.
    """
    key = key_of({"source": split_hash(ctx, split), **depends})
    path = Path(ctx.profile_dir) / "sets" / f"{name}-{key}.json"
    return resolver.resolve(ctx.profile_dir, kind="data", name=name, path=path, make=build, cheap=True,
                            write=lambda value, p: write_json(p, value, indent=None))
