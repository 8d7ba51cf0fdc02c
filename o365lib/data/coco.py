"""Loading and validating COCO / Objects365-format detection JSON.

A file is parsed, validated and indexed by id; nothing is written. Every problem found is
reported in one :class:`DataValidationError` whose message names the file, the record
(``annotation id=17``) and the field (``bbox``), so a user can fix the input before any
training or result file is overwritten.

Validation rules:

- top level: ``images``, ``annotations`` and ``categories`` lists are required;
- images need ``id``, ``file_name``, ``width``, ``height`` (positive); categories need
  ``id`` and ``name``; annotations need ``id``, ``image_id``, ``category_id`` and ``bbox``
  (``[x, y, w, h]``, four finite numbers); ``area`` defaults to the box area and
  ``iscrowd`` to 0;
- ids are unique within images, annotations and categories; an annotation's
  ``image_id`` and ``category_id`` must exist (categories are matched by id, never by
  their position in the list);
- box width and height must be > 0;
- a box reaching outside its image is handled by ``box_policy``: ``"clip"`` clips it to
  the image (and counts it in ``num_clipped``; a box left with no area is still an error),
  ``"reject"`` reports it as an error. Clipped boxes get their ``area`` set to the clipped
  box area.

Image files are checked by ``check_images``: ``"eager"`` stats every file up front and
reports all missing ones together (the count and the first names); ``"lazy"`` defers to
reading time (:meth:`CocoData.image_path` with ``must_exist=True`` raises, which is what
the training dataset uses); ``"off"`` never checks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o365lib.data.ranking import LabelMap

__all__ = ["CocoData", "DataValidationError", "ValidationReport", "load_coco", "validate_coco"]

BOX_POLICIES = ("clip", "reject")
CHECK_IMAGES = ("lazy", "eager", "off")
_MAX_LISTED = 10  # problems spelled out in one error message


class DataValidationError(ValueError):
    """Bad input data. ``source`` is the file (or label) and ``problems`` the list of findings."""

    def __init__(self, source: str, problems: list[str]):
        self.source = str(source)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:_MAX_LISTED])
        more = len(self.problems) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{self.source}: {count}: {self.problems[0] if self.problems else ''}\n{shown}{tail}")


@dataclass
class ValidationReport:
    """What validation found and changed (nothing here is an error)."""

    num_images: int = 0
    num_annotations: int = 0
    num_categories: int = 0
    num_clipped: int = 0
    clipped_ids: list[int] = field(default_factory=list)
    num_area_filled: int = 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _check_records(records: Any, kind: str, required: tuple[str, ...], problems: list[str]) -> dict:
    """Index ``records`` by id, reporting missing keys, non-int and duplicate ids."""
    index: dict[int, dict] = {}
    if not isinstance(records, list):
        problems.append(f"'{kind}s' must be a list, got {type(records).__name__}")
        return index
    for pos, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(f"{kind} at position {pos}: must be an object, got {type(rec).__name__}")
            continue
        rid = rec.get("id")
        name = f"{kind} id={rid}" if "id" in rec else f"{kind} at position {pos}"
        missing = [k for k in required if k not in rec]
        if missing:
            problems.append(f"{name}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if "id" not in rec:
            continue
        if not _is_int(rid):
            problems.append(f"{name}: field 'id' must be an int, got {rid!r}")
            continue
        if rid in index:
            problems.append(f"{name}: field 'id' is a duplicate {kind} id")
            continue
        index[rid] = rec
    return index


def validate_coco(
    dataset: Any, *, source: str, box_policy: str = "clip"
) -> tuple[dict, ValidationReport]:
    """Validate a parsed COCO dict; return a cleaned copy and a :class:`ValidationReport`.

    The input is never modified: annotations that are clipped or get a default ``area`` /
    ``iscrowd`` are copied. ``source`` names the data in error messages (usually the path).
    Raises :class:`DataValidationError` listing every problem found.
    """
    if box_policy not in BOX_POLICIES:
        raise ValueError(f"box_policy must be one of {BOX_POLICIES}, got {box_policy!r}")
    if not isinstance(dataset, dict):
        raise DataValidationError(source, [f"top level must be a JSON object, got {type(dataset).__name__}"])
    missing = [k for k in ("images", "annotations", "categories") if k not in dataset]
    if missing:
        raise DataValidationError(source, [(f"missing top-level key{'s' if len(missing) > 1 else ''} "
                                           f"{', '.join(repr(k) for k in missing)}")])
    problems: list[str] = []
    images = _check_records(dataset["images"], "image", ("id", "file_name", "width", "height"), problems)
    categories = _check_records(dataset["categories"], "category", ("id", "name"), problems)
    anns = _check_records(dataset["annotations"], "annotation", ("id", "image_id", "category_id", "bbox"),
                          problems)
    for iid, img in images.items():
        for key in ("width", "height"):
            if key in img and not (_is_number(img[key]) and img[key] > 0):
                problems.append(f"image id={iid}: field '{key}' must be a positive number, got {img[key]!r}")
        if "file_name" in img and not (isinstance(img["file_name"], str) and img["file_name"]):
            problems.append(f"image id={iid}: field 'file_name' must be a non-empty string")
    if problems:  # annotations cannot be checked against broken images/categories
        raise DataValidationError(source, problems)

    report = ValidationReport(num_images=len(images), num_annotations=len(anns), num_categories=len(categories))
    clean_anns: list[dict] = []
    for aid, ann in anns.items():
        name = f"annotation id={aid}"
        if any(k not in ann for k in ("image_id", "category_id", "bbox")):
            continue  # already reported as missing
        img = images.get(ann["image_id"]) if _is_int(ann["image_id"]) else None
        if img is None:
            problems.append(f"{name}: field 'image_id' {ann['image_id']!r} is not a listed image id")
        if not _is_int(ann["category_id"]) or ann["category_id"] not in categories:
            problems.append(f"{name}: field 'category_id' {ann['category_id']!r} is not a listed category id")
        bbox = ann["bbox"]
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.append(f"{name}: field 'bbox' must be [x, y, w, h] of 4 finite numbers, got {bbox!r}")
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            problems.append(f"{name}: field 'bbox' width and height must be > 0, got w={w:g} h={h:g}")
            continue
        if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
            problems.append(f"{name}: field 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        if "area" in ann and not (_is_number(ann["area"]) and ann["area"] >= 0):
            problems.append(f"{name}: field 'area' must be a number >= 0, got {ann['area']!r}")
        if img is None:
            continue
        W, H = float(img["width"]), float(img["height"])
        out = x < 0 or y < 0 or x + w > W or y + h > H
        new = ann
        if out:
            if box_policy == "reject":
                problems.append(f"{name}: field 'bbox' [{x:g}, {y:g}, {w:g}, {h:g}] lies outside image "
                                f"id={img['id']} ({W:g}x{H:g}) (box_policy='reject')")
                continue
            x1, y1 = min(max(x, 0.0), W), min(max(y, 0.0), H)
            x2, y2 = min(max(x + w, 0.0), W), min(max(y + h, 0.0), H)
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                problems.append(f"{name}: field 'bbox' [{x:g}, {y:g}, {w:g}, {h:g}] lies entirely outside "
                                f"image id={img['id']} ({W:g}x{H:g})")
                continue
            new = dict(ann, bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
            report.num_clipped += 1
            report.clipped_ids.append(aid)
        if "area" not in new or "iscrowd" not in new:
            new = dict(new)
            if "area" not in new:
                new["area"] = float(new["bbox"][2]) * float(new["bbox"][3])
                report.num_area_filled += 1
            new.setdefault("iscrowd", 0)
        clean_anns.append(new)
    if problems:
        raise DataValidationError(source, problems)
    clean = dict(dataset)
    clean["annotations"] = clean_anns
    return clean, report


@dataclass
class CocoData:
    """A validated COCO data set indexed by id. Build it with :func:`load_coco`."""

    path: Path | None
    image_root: Path
    dataset: dict
    images: dict[int, dict]
    categories: dict[int, dict]
    anns_by_image: dict[int, list[dict]]
    num_clipped: int
    label_map: LabelMap
    report: ValidationReport = field(default_factory=ValidationReport)

    @property
    def category_ids(self) -> list[int]:
        """Sorted category ids (the order of model labels 1..K)."""
        return sorted(self.categories)

    @property
    def image_ids(self) -> list[int]:
        """Image ids in file order."""
        return list(self.images)

    def image_path(self, image_id: int, *, must_exist: bool = False) -> Path:
        """Path of an image file; with ``must_exist`` a missing file raises DataValidationError."""
        img = self.images[image_id]
        path = self.image_root / img["file_name"]
        if must_exist and not path.is_file():
            raise DataValidationError(
                str(self.path or "<dataset>"),
                [f"image id={image_id}: field 'file_name' {img['file_name']!r} not found under {self.image_root}"],
            )
        return path

    @classmethod
    def from_dataset(cls, dataset: dict, *, image_root: str | Path, source: str = "<dataset>",
                     path: str | Path | None = None, box_policy: str = "clip") -> CocoData:
        """Validate an in-memory COCO dict and index it (no image check)."""
        clean, report = validate_coco(dataset, source=source, box_policy=box_policy)
        images = {img["id"]: img for img in clean["images"]}
        categories = {cat["id"]: cat for cat in clean["categories"]}
        anns_by_image: dict[int, list[dict]] = {iid: [] for iid in images}
        for ann in clean["annotations"]:
            anns_by_image[ann["image_id"]].append(ann)
        return cls(path=Path(path) if path is not None else None, image_root=Path(image_root), dataset=clean,
                   images=images, categories=categories, anns_by_image=anns_by_image,
                   num_clipped=report.num_clipped, label_map=LabelMap(categories), report=report)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataValidationError(str(path), ["file not found"]) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(str(path), [f"not UTF-8 text ({err.reason} at byte {err.start})"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataValidationError(
            str(path), [f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}"]
        ) from None


def _check_image_files(data: CocoData, *, max_named: int = 5) -> None:
    missing = [img["file_name"] for img in data.images.values() if not (data.image_root / img["file_name"]).is_file()]
    if missing:
        names = ", ".join(repr(m) for m in missing[:max_named])
        more = f" and {len(missing) - max_named} more" if len(missing) > max_named else ""
        raise DataValidationError(
            str(data.path),
            [(f"{len(missing)} of {len(data.images)} image files missing under {data.image_root} "
             f"(field 'file_name'): {names}{more}")],
        )


def load_coco(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    box_policy: str = "clip",
    check_images: str = "lazy",
) -> CocoData:
    """Load, validate and index a COCO / Objects365-format JSON file. Writes nothing.

    ``image_root`` defaults to ``<json dir>/images`` when that folder exists, else the JSON's
    folder. ``box_policy`` ("clip" | "reject") and ``check_images`` ("lazy" | "eager" | "off")
    are described in the module docstring. Raises :class:`DataValidationError`.
    """
    if check_images not in CHECK_IMAGES:
        raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
    path = Path(path)
    if image_root is None:
        image_root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    data = CocoData.from_dataset(_read_json(path), image_root=image_root, source=str(path), path=path,
                                 box_policy=box_policy)
    if check_images == "eager":
        _check_image_files(data)
    return data
