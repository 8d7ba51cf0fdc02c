"""Loading COCO / Objects365-format detection JSON into a validated, indexed :class:`CocoData`.

A file is parsed, validated (rules in :mod:`o365lib.data.validate`) and indexed by id; nothing
is written. Every problem is reported in one :class:`DataValidationError` naming the file, the
record (``image id=7``, ``annotation id=17``) and the field (``file_name``, ``width``, ``bbox``).
What is skipped, dropped or clipped is counted in ``CocoData.report``, and skips and drops also
raise a :class:`DataWarning` that says what and how many.

Image files are checked against the JSON by ``check_images``:

- ``"quick"`` (default): every listed file must exist, checked by listing each folder once
  (seconds for 600k files), and every file's header is read (PIL, no decoding: 30-150
  microseconds an image on a warm disk cache, a few minutes for 1.74M images) so that an unreadable
  file, or a real width or height that differs from the JSON's, fails at load time, before the
  first training step. All problems are reported together (missing files: count, then the first
  ones by image id). Pixels are not decoded: ``check-data --all-images`` does that.
- ``"full"``: the same as ``"quick"`` (which used to skip the headers); kept for profiles that
  name it.
- ``"lazy"``: nothing at load time. The training dataset checks each image when it first reads
  it (existence, decodability, width and height) and raises a DataValidationError there.
- ``"off"``: nothing at load time either (for JSON without images, e.g. statistics only).
- ``"eager"``: the former name of ``"quick"``, still accepted.

Objects365 as downloaded (see :mod:`o365lib.data.objects365`): ``layout="auto"`` recognises v2's
``images/v1/patchN/x.jpg`` names and resolves them to ``<image_root>/patchN/x.jpg``; the three
images v2 lists but does not ship are skipped with a warning naming them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o365lib.data.images import header_size, missing_files, size_problem
from o365lib.data.objects365 import (
    KNOWN_MISSING,
    LAYOUTS,
    detect_layout,
    known_missing_key,
    relative_image_name,
)
from o365lib.data.ranking import LabelMap
from o365lib.data.validate import DataValidationError, DataWarning, ValidationReport, validate_coco

__all__ = ["CHECK_IMAGES", "CocoData", "DataValidationError", "DataWarning", "ValidationReport", "load_coco",
           "validate_coco"]

CHECK_IMAGES = ("quick", "full", "lazy", "off", "eager")
_NAMED = 5  # missing files spelled out in the headline of the error


@dataclass
class CocoData:
    """A validated COCO data set indexed by id. Build it with :func:`load_coco`.

    ``path`` is the JSON file (None for in-memory data); errors about its images name it.
    ``layout`` says how ``file_name`` maps to a path under ``image_root`` (see :meth:`image_path`).
    """

    path: Path | None
    image_root: Path
    dataset: dict
    images: dict[int, dict]
    categories: dict[int, dict]
    anns_by_image: dict[int, list[dict]]
    num_clipped: int
    label_map: LabelMap
    report: ValidationReport = field(default_factory=ValidationReport)
    layout: str = "coco"

    @property
    def category_ids(self) -> list[int]:
        """Sorted category ids (the order of model labels 1..K)."""
        return sorted(self.categories)

    @property
    def image_ids(self) -> list[int]:
        """Image ids in file order."""
        return list(self.images)

    @property
    def source(self) -> str:
        """The JSON file's path as errors name it (``<dataset>`` for in-memory data)."""
        return str(self.path) if self.path is not None else "<dataset>"

    def relative_name(self, image_id: int) -> str:
        """The image's path relative to ``image_root`` (``file_name`` mapped through ``layout``)."""
        return relative_image_name(self.images[image_id]["file_name"], layout=self.layout)

    def image_path(self, image_id: int, *, must_exist: bool = False) -> Path:
        """Path of an image file; with ``must_exist`` a missing file raises DataValidationError."""
        path = self.image_root / self.relative_name(image_id)
        if must_exist and not path.is_file():
            name = self.images[image_id]["file_name"]
            problem = f"image id={image_id}: field 'file_name' {name!r} not found (looked for {path})"
            raise DataValidationError(self.source, [problem])
        return path

    @classmethod
    def from_dataset(cls, dataset: dict, *, image_root: str | Path, source: str = "<dataset>",
                     path: str | Path | None = None, box_policy: str = "clip", duplicates: str = "keep",
                     layout: str = "coco") -> CocoData:
        """Validate an in-memory COCO dict and index it (no image check)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS} (or 'auto' in load_coco), got {layout!r}")
        clean, report = validate_coco(dataset, source=source, box_policy=box_policy, duplicates=duplicates)
        images = {img["id"]: img for img in clean["images"]}
        categories = {cat["id"]: cat for cat in clean["categories"]}
        anns_by_image: dict[int, list[dict]] = {iid: [] for iid in images}
        for ann in clean["annotations"]:
            anns_by_image[ann["image_id"]].append(ann)
        return cls(path=Path(path) if path is not None else None, image_root=Path(image_root), dataset=clean,
                   images=images, categories=categories, anns_by_image=anns_by_image,
                   num_clipped=report.num_clipped, label_map=LabelMap(categories), report=report, layout=layout)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building millions of small dicts and lists (parsing and
    validating Objects365's JSON) otherwise triggers full collections that find nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing, non-UTF-8 or malformed file is a DataValidationError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataValidationError(str(path), ["file not found"]) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(str(path), [f"not UTF-8 text ({err.reason} at byte {err.start})"]) from None
    try:
        with gc_paused():
            return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataValidationError(
            str(path), [f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}"]
        ) from None


def skip_known_missing(dataset: Any) -> tuple[Any, list[str], int]:
    """``dataset`` without the images of :data:`KNOWN_MISSING` and their annotations.

    Returns ``(dataset, skipped file names, number of annotations skipped)``; the input is not
    modified (an unchanged dataset is returned as is). Malformed input is left to validation.
    """
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
        return dataset, [], 0
    bases = {key.rsplit("/", 1)[-1] for key in KNOWN_MISSING}
    skipped: dict[Any, str] = {}
    for img in dataset["images"]:
        name = img.get("file_name") if isinstance(img, dict) else None
        if isinstance(name, str) and name.rsplit("/", 1)[-1] in bases and known_missing_key(name) in KNOWN_MISSING:
            skipped[img.get("id")] = name
    if not skipped:
        return dataset, [], 0
    anns = dataset.get("annotations")
    kept_anns = anns
    if isinstance(anns, list):
        kept_anns = [a for a in anns if not (isinstance(a, dict) and a.get("image_id") in skipped)]
    images = [img for img in dataset["images"] if not (isinstance(img, dict) and img.get("id") in skipped)]
    num_anns = len(anns) - len(kept_anns) if isinstance(anns, list) else 0
    return dict(dataset, images=images, annotations=kept_anns), list(skipped.values()), num_anns


def check_image_files(data: CocoData, *, read_headers: bool = False) -> None:
    """Raise one DataValidationError for every missing file (and, with ``read_headers``, every
    unreadable file or one whose real width/height differ from the JSON's)."""
    ids = data.image_ids
    names = [data.relative_name(iid) for iid in ids]
    missing = set(missing_files(data.image_root, names))
    problems: list[str] = []
    if missing:
        listed = [(iid, name) for iid, name in zip(ids, names) if name in missing]
        shown = ", ".join(repr(data.images[iid]["file_name"]) for iid, _ in listed[:_NAMED])
        more = f" and {len(listed) - _NAMED} more" if len(listed) > _NAMED else ""
        problems.append(f"{len(listed)} of {len(ids)} image files missing under {data.image_root} "
                        f"(field 'file_name'): {shown}{more}")
        problems.extend(f"image id={iid}: field 'file_name' {data.images[iid]['file_name']!r} not found "
                        f"(looked for {data.image_root / name})" for iid, name in listed)
    if read_headers:
        for iid, name in zip(ids, names):
            if name in missing:
                continue
            path = data.image_root / name
            try:
                actual = header_size(path)
            except OSError as error:
                problems.append(f"image id={iid}: field 'file_name' {path} is not a readable image ({error})")
                continue
            message = size_problem(data.images[iid], actual, file=path)
            if message:
                problems.append(message)
    if problems:
        raise DataValidationError(data.source, problems)


def _warn_about(report: ValidationReport, source: str) -> None:
    if report.skipped_images:
        warnings.warn(f"{source}: skipped {len(report.skipped_images)} image(s) that the Objects365 v2 release "
                      f"lists but does not ship, with their {report.num_skipped_annotations} annotation(s): "
                      f"{', '.join(report.skipped_images)}", DataWarning, stacklevel=3)
    if report.num_dropped:
        reasons = ", ".join(f"{len(ids)} {reason}" for reason, ids in sorted(report.dropped_ids.items()))
        warnings.warn(f"{source}: dropped {report.num_dropped} box(es) under box_policy='drop' ({reasons}; "
                      f"field 'bbox')", DataWarning, stacklevel=3)
    if report.num_duplicates:
        what = "dropped" if report.duplicates_dropped else "kept (duplicates='drop' drops them)"
        warnings.warn(f"{source}: {report.num_duplicates} exact duplicate annotation(s) in "
                      f"{report.num_images_with_duplicates} image(s), {what}", DataWarning, stacklevel=3)


def load_coco(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    box_policy: str = "clip",
    check_images: str = "quick",
    duplicates: str = "keep",
    layout: str = "auto",
) -> CocoData:
    """Load, validate and index a COCO / Objects365-format JSON file. Writes nothing.

    Args:
        image_root: the image folder; default ``<json dir>/images`` when it exists, else the
            JSON's folder.
        box_policy: "clip" | "reject" | "drop" (:mod:`o365lib.data.validate`); use "drop" for
            the real Objects365 files.
        check_images: "quick" | "full" | "lazy" | "off" (module docstring).
        duplicates: "keep" | "drop" exact duplicate annotations (counted either way).
        layout: "auto" | "coco" | "objects365_v2" (:mod:`o365lib.data.objects365`).

    Raises:
        DataValidationError: naming the file, the record and the field of every problem.
    """
    if check_images not in CHECK_IMAGES:
        raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}")
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    path = Path(path)
    if image_root is None:
        image_root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    raw, skipped, num_skipped_anns = skip_known_missing(read_json(path))
    if layout == "auto":
        names = (img.get("file_name") for img in raw.get("images", []) if isinstance(img, dict)) \
            if isinstance(raw, dict) and isinstance(raw.get("images"), list) else iter(())
        layout = detect_layout(names, image_root=image_root)
    with gc_paused():
        data = CocoData.from_dataset(raw, image_root=image_root, source=str(path), path=path,
                                     box_policy=box_policy, duplicates=duplicates, layout=layout)
    data.report.skipped_images = skipped
    data.report.num_skipped_annotations = num_skipped_anns
    _warn_about(data.report, str(path))
    if check_images in ("quick", "eager", "full"):
        check_image_files(data, read_headers=True)
    return data
