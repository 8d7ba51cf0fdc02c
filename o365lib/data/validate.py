"""Validating a parsed COCO / Objects365 dict: what is an error, what is repaired, what is dropped.

Every problem found is reported in one :class:`DataValidationError` whose message names the
file, the record (``annotation id=17``) and the field (``bbox``), so a user can fix the input
before any training or result file is overwritten. Repairs and drops are never silent: they are
counted, with the annotation ids, in a :class:`ValidationReport`.

Rules:

- top level: ``images``, ``annotations`` and ``categories`` lists are required;
- images need ``id``, ``file_name``, ``width``, ``height`` (positive); categories need ``id``
  and ``name``; annotations need ``id``, ``image_id``, ``category_id`` and ``bbox``
  (``[x, y, w, h]``, four finite numbers); ``area`` defaults to the box area, ``iscrowd`` to 0;
- ids are unique within images, annotations and categories; an annotation's ``image_id`` and
  ``category_id`` must exist (categories are matched by id, never by list position);
- boxes follow ``box_policy``:

  ============  ===========================  ==================================  ===============
  box_policy    box reaching outside image   zero-area (w or h = 0) / inverted   entirely outside
  ============  ===========================  ==================================  ===============
  ``"reject"``  error                        error                               error
  ``"clip"``    clipped, counted             error                               error
  ``"drop"``    clipped, counted             dropped, counted                    dropped, counted
  ============  ===========================  ==================================  ===============

  ``"clip"`` suits data you made (a degenerate box is a bug to fix); ``"drop"`` suits the real
  Objects365 files, whose few zero-area and inverted boxes (w or h < 0) must not make a
  600k-image file unloadable. Clipped boxes get ``area`` = the clipped box area.
- exact duplicates (same image, category and box as an earlier annotation) are counted, and
  dropped with ``duplicates="drop"`` (the first copy is kept). Objects365 has many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BOX_POLICIES",
    "DUPLICATE_POLICIES",
    "DataValidationError",
    "DataWarning",
    "ValidationReport",
    "validate_coco",
]

BOX_POLICIES = ("clip", "reject", "drop")
DUPLICATE_POLICIES = ("keep", "drop")
_MAX_LISTED = 10  # problems spelled out in one error message


class DataValidationError(ValueError):
    """Bad input data. ``source`` is the file (or label) and ``problems`` the list of findings.

    ``DataValidationError(message)`` with one argument keeps a finished message as is (that is how
    torch's DataLoader re-raises an error from a worker process, and how the error unpickles).
    """

    def __init__(self, source: str, problems: list[str] | None = None):
        if problems is None:
            self.source, self.problems = "", [str(source)]
            super().__init__(str(source))
            return
        self.source = str(source)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:_MAX_LISTED])
        more = len(self.problems) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{self.source}: {count}: {self.problems[0] if self.problems else ''}\n{shown}{tail}")


class DataWarning(UserWarning):
    """Data were loaded but something was skipped, dropped or repaired (the message says what)."""


@dataclass
class ValidationReport:
    """What validation (and loading) repaired, dropped or skipped; nothing here is an error."""

    num_images: int = 0
    num_annotations: int = 0
    num_categories: int = 0
    num_clipped: int = 0
    clipped_ids: list[int] = field(default_factory=list)
    num_area_filled: int = 0
    #: reason ("zero-area", "inverted", "outside") -> ids of annotations dropped under box_policy="drop"
    dropped_ids: dict[str, list[int]] = field(default_factory=dict)
    #: ids of the later copies of exact duplicate annotations (same image, category and box)
    duplicate_ids: list[int] = field(default_factory=list)
    num_images_with_duplicates: int = 0
    duplicates_dropped: bool = False
    #: file names of images left out at load time (listed by the release but not shipped)
    skipped_images: list[str] = field(default_factory=list)
    num_skipped_annotations: int = 0

    @property
    def num_dropped(self) -> int:
        """Annotations dropped for their box (zero-area, inverted, entirely outside)."""
        return sum(len(ids) for ids in self.dropped_ids.values())

    @property
    def num_duplicates(self) -> int:
        """Exact duplicate annotations beyond the first copy (dropped or not)."""
        return len(self.duplicate_ids)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _is_box(bbox: Any) -> bool:
    """``[x, y, w, h]`` of four finite numbers (fast path for the plain floats and ints of JSON)."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return False
    for value in bbox:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return False
        elif kind is not int and not _is_number(value):
            return False
    return True


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


def _check_images_and_categories(dataset: dict, source: str) -> tuple[dict, dict, dict]:
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
    return images, categories, anns


def _clean_box(ann: dict, img: dict, *, box_policy: str, report: ValidationReport,
               problems: list[str]) -> dict | None:
    """The annotation with its box checked (and clipped) under ``box_policy``; None when dropped."""
    aid, name = ann["id"], f"annotation id={ann['id']}"
    x, y, w, h = (float(v) for v in ann["bbox"])
    if w <= 0 or h <= 0:
        reason = "inverted" if (w < 0 or h < 0) else "zero-area"
        if box_policy == "drop":
            report.dropped_ids.setdefault(reason, []).append(aid)
            return None
        problems.append(f"{name}: field 'bbox' width and height must be > 0, got w={w:g} h={h:g} "
                        f"({reason}; box_policy='drop' drops such boxes)")
        return None
    W, H = float(img["width"]), float(img["height"])
    if not (x < 0 or y < 0 or x + w > W or y + h > H):
        return ann
    if box_policy == "reject":
        problems.append(f"{name}: field 'bbox' [{x:g}, {y:g}, {w:g}, {h:g}] lies outside image "
                        f"id={img['id']} ({W:g}x{H:g}) (box_policy='reject')")
        return None
    x1, y1 = min(max(x, 0.0), W), min(max(y, 0.0), H)
    x2, y2 = min(max(x + w, 0.0), W), min(max(y + h, 0.0), H)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        if box_policy == "drop":
            report.dropped_ids.setdefault("outside", []).append(aid)
            return None
        problems.append(f"{name}: field 'bbox' [{x:g}, {y:g}, {w:g}, {h:g}] lies entirely outside "
                        f"image id={img['id']} ({W:g}x{H:g})")
        return None
    report.num_clipped += 1
    report.clipped_ids.append(aid)
    return dict(ann, bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))


def _find_duplicates(anns: list[dict], report: ValidationReport) -> set[int]:
    """Ids of annotations repeating an earlier one exactly (image, category, box); counted in ``report``."""
    by_image: dict[int, list[dict]] = {}
    for ann in anns:
        by_image.setdefault(ann["image_id"], []).append(ann)
    duplicates: set[int] = set()
    for image_anns in by_image.values():
        if len(image_anns) < 2:
            continue
        seen: set[tuple] = set()
        found = False
        for ann in image_anns:
            key = (ann["category_id"], *ann["bbox"])  # 1 == 1.0 and hash(1) == hash(1.0)
            if key in seen:
                duplicates.add(ann["id"])
                found = True
            else:
                seen.add(key)
        report.num_images_with_duplicates += found
    report.duplicate_ids = [ann["id"] for ann in anns if ann["id"] in duplicates]
    return duplicates


def validate_coco(
    dataset: Any, *, source: str, box_policy: str = "clip", duplicates: str = "keep"
) -> tuple[dict, ValidationReport]:
    """Validate a parsed COCO dict; return a cleaned copy and a :class:`ValidationReport`.

    The input is never modified: annotations that are clipped or get a default ``area`` /
    ``iscrowd`` are copied. ``source`` names the data in error messages (usually the path).
    ``box_policy`` ("clip" | "reject" | "drop") and ``duplicates`` ("keep" | "drop") are described
    in the module docstring. Raises :class:`DataValidationError` listing every problem found.
    """
    if box_policy not in BOX_POLICIES:
        raise ValueError(f"box_policy must be one of {BOX_POLICIES}, got {box_policy!r}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    if not isinstance(dataset, dict):
        raise DataValidationError(source, [f"top level must be a JSON object, got {type(dataset).__name__}"])
    missing = [k for k in ("images", "annotations", "categories") if k not in dataset]
    if missing:
        raise DataValidationError(source, [(f"missing top-level key{'s' if len(missing) > 1 else ''} "
                                           f"{', '.join(repr(k) for k in missing)}")])
    images, categories, anns = _check_images_and_categories(dataset, source)
    problems: list[str] = []
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
        if not _is_box(bbox):
            problems.append(f"{name}: field 'bbox' must be [x, y, w, h] of 4 finite numbers, got {bbox!r}")
            continue
        if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
            problems.append(f"{name}: field 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        if "area" in ann and not (_is_number(ann["area"]) and ann["area"] >= 0):
            problems.append(f"{name}: field 'area' must be a number >= 0, got {ann['area']!r}")
        if img is None:
            continue
        new = _clean_box(ann, img, box_policy=box_policy, report=report, problems=problems)
        if new is None:
            continue
        if "area" not in new or "iscrowd" not in new:
            new = dict(new)
            if "area" not in new:
                new["area"] = float(new["bbox"][2]) * float(new["bbox"][3])
                report.num_area_filled += 1
            new.setdefault("iscrowd", 0)
        clean_anns.append(new)
    if problems:
        raise DataValidationError(source, problems)
    repeated = _find_duplicates(clean_anns, report)
    if duplicates == "drop" and repeated:
        clean_anns = [ann for ann in clean_anns if ann["id"] not in repeated]
        report.duplicates_dropped = True
    clean = dict(dataset)
    clean["annotations"] = clean_anns
    return clean, report
