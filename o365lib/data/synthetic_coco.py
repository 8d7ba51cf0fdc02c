"""The synthetic profiles' "COCO": a generated detection set whose classes are disjoint from the 365.

Lu et al. 2019 start the tiny track's baseline from a COCO-pretrained *detector*: backbone, RPN and
box heads already detect objects, only the classifier's classes are new. Nothing can be downloaded
on the synthetic profiles, so this module makes the stand-in for COCO that such a detector is trained
on (``o365lib.book.artefacts.coco_standin``):

- ``num_classes`` classes (80 by default, as COCO), compositions of the *pretraining* shape families
  (:data:`~o365lib.data.synthetic_render.PRETRAIN_SHAPES`: hexagon, arrow, tee, ...) with the same
  colours and textures, so no class is one of the 365 detection classes (whose shapes are
  :data:`~o365lib.data.synthetic_render.SHAPES`) and none shares a name with one;
- category ids from :data:`FIRST_ID` upwards, so that no code mapping classes by id can mistake one for
  a detection class;
- moderately imbalanced like COCO: training instances decay log-linearly from ``most`` to ``fewest``
  over a seeded class order (max/min 10 by default, Objects365's is ~1000 on the default profile);
- images drawn as the detection set's (same renderer, sizes, styles and density), ``val_per_class``
  held-out instances per class.

``make_coco_standin(out_dir, ...)`` writes ``out_dir/{train,val}.json``, ``out_dir/images/*.png`` and
a ``manifest.json`` last, in a temporary folder renamed into place; the same arguments give the same
bytes, and a complete folder made with the same arguments is reused.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from o365lib.data.synthetic import GENERATOR_VERSION, MANIFEST, dump_json, publish_folder, render_images
from o365lib.data.synthetic_plan import STYLES, coco_records, layout_images
from o365lib.data.synthetic_render import COLOURS, PRETRAIN_SHAPES, TEXTURES

#: The first category id of the stand-in set (the detection classes use 1..365).
FIRST_ID = 1001


@dataclass(frozen=True)
class CocoStandinSpec:
    """What the stand-in set holds (every field is part of its identity)."""

    num_classes: int = 80
    most: int = 500  # training instances of the most frequent class
    fewest: int = 50  # ... and of the rarest
    val_per_class: int = 10
    image_size: int = 128
    min_objects: int = 6
    max_objects: int = 16
    size_scale: float = 1.0  # multiplies the object sides of the normal and large styles (as the detection set's)
    seed: int = 0

    def __post_init__(self) -> None:
        total = len(PRETRAIN_SHAPES) * len(COLOURS) * len(TEXTURES)
        if not 1 <= self.num_classes <= total:
            raise ValueError(f"num_classes must be in 1..{total}, got {self.num_classes}")
        if not 1 <= self.fewest <= self.most:
            raise ValueError(f"need 1 <= fewest <= most, got fewest={self.fewest}, most={self.most}")
        if not self.size_scale > 0:
            raise ValueError(f"size_scale must be > 0, got {self.size_scale}")
        if self.val_per_class < 1 or not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need val_per_class >= 1 and 1 <= min_objects <= max_objects, got {self}")


def standin_categories(spec: CocoStandinSpec) -> list[dict]:
    """The stand-in classes (ids ``FIRST_ID...`` in name order), with ``shape``, ``colour``, ``texture``, ``style``."""
    rng = np.random.default_rng([spec.seed, 80])
    combos = list(itertools.product(PRETRAIN_SHAPES, COLOURS, TEXTURES))
    chosen = sorted(rng.choice(len(combos), spec.num_classes, replace=False))
    styles = rng.choice(STYLES, size=spec.num_classes, p=[0.7, 0.15, 0.15])
    cats = []
    for index, (combo, style) in enumerate(zip((combos[i] for i in chosen), styles)):
        shape, colour, texture = combo
        cats.append({"id": FIRST_ID + index, "name": f"{colour} {texture} {shape}", "supercategory": shape,
                     "shape": shape, "colour": colour, "texture": texture, "style": str(style)})
    return cats


def standin_counts(spec: CocoStandinSpec) -> dict[str, dict[int, int]]:
    """Instances per class id of each split: ``train`` log-linear ``most`` -> ``fewest`` in a seeded order."""
    cats = standin_categories(spec)
    n = np.rint(np.exp(np.linspace(np.log(spec.most), np.log(spec.fewest), len(cats)))).astype(int)
    order = np.random.default_rng([spec.seed, 81]).permutation(len(cats))
    train = {cats[i]["id"]: int(n[rank]) for rank, i in enumerate(order)}
    return {"train": train, "val": {c["id"]: spec.val_per_class for c in cats}}


def plan_coco_standin(spec: CocoStandinSpec) -> dict[str, dict]:
    """The COCO dicts of the ``train`` and ``val`` splits (file names relative to ``images/``)."""
    cats = standin_categories(spec)
    by_id = {c["id"]: c for c in cats}
    splits, next_image, next_ann = {}, 1, 1
    for tag, (split, counts) in enumerate(standin_counts(spec).items(), start=90):
        layout = layout_images(np.random.default_rng([spec.seed, tag]), counts, by_id, image_size=spec.image_size,
                               min_objects=spec.min_objects, max_objects=spec.max_objects, size_scale=spec.size_scale)
        images, annotations = coco_records(layout, prefix=f"coco_{split}", image_size=spec.image_size,
                                           first_image=next_image, first_annotation=next_ann)
        next_image, next_ann = next_image + len(images), next_ann + len(annotations)
        splits[split] = {"info": {"description": "o365lib synthetic stand-in for COCO (classes disjoint from the 365)",
                                  "split": split, "spec": asdict(spec)},
                         "images": images, "annotations": annotations, "categories": [dict(c) for c in cats]}
    return splits


def _manifest(spec: CocoStandinSpec) -> dict:
    return {"generator": "o365lib.data.synthetic_coco", "version": GENERATOR_VERSION, "spec": asdict(spec)}


def coco_standin_is_current(out_dir: str | Path, spec: CocoStandinSpec) -> bool:
    """True when ``out_dir`` holds the complete set :func:`make_coco_standin` makes from ``spec``."""
    root = Path(out_dir)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        images = manifest.pop("images")
        if manifest != _manifest(spec) or not all((root / f"{s}.json").is_file() for s in ("train", "val")):
            return False
        return all((root / "images" / name).stat().st_size == size for name, size in images.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def make_coco_standin(out_dir: str | Path, spec: CocoStandinSpec = CocoStandinSpec()) -> Path:
    """Generate (or reuse) the stand-in set in ``out_dir`` (see the module docstring); returns ``out_dir``."""
    root = Path(out_dir).resolve()

    def fill(tmp: Path) -> None:
        image_dir = tmp / "images"
        image_dir.mkdir(parents=True)
        splits = plan_coco_standin(spec)
        cats = {c["id"]: c for c in splits["train"]["categories"]}
        jobs = []
        for data in splits.values():
            boxes: dict[int, list] = {}
            for ann in data["annotations"]:
                c = cats[ann["category_id"]]
                boxes.setdefault(ann["image_id"], []).append((c["shape"], c["colour"], c["texture"], ann["bbox"]))
            jobs.extend((img["file_name"], img["id"], boxes.get(img["id"], [])) for img in data["images"])
        render_images(jobs, image_dir=image_dir, seed=spec.seed + 80_000, size=spec.image_size)
        for split, data in splits.items():
            (tmp / f"{split}.json").write_bytes(dump_json(data))
        sizes = {name: (image_dir / name).stat().st_size for name, _, _ in sorted(jobs)}
        (tmp / MANIFEST).write_bytes(dump_json({**_manifest(spec), "images": sizes}))

    publish_folder(root, fill=fill, is_current=lambda: coco_standin_is_current(root, spec))
    return root
