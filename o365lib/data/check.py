"""End-to-end check of a profile's data files, before a multi-day run: ``check_dataset``.

For every split it loads and validates the JSON exactly as training will (same ``box_policy``,
layout and skips), then reports

- counts and tail statistics: classes, images, boxes, max / min instances per class, classes
  without instances, images without annotations;
- image files: every listed file is checked for existence (one folder listing per folder, so
  seconds for 600k files), and every present file is opened: its header is read (no decoding:
  30-150 microseconds an image measured on a warm disk cache, so a few minutes for Objects365
  v2's 1.74M train images; more where every read waits on a cold disk), which finds empty,
  truncated-header and non-image files and a real width/height that differs from the JSON's.
  A random ``sample`` of them (all, with ``all_images=True``) is also decoded, which alone finds
  pixel data truncated after an intact header. The report says how many images were checked in
  which way, and how many were not;
- what loading will skip, drop or repair: Objects365 v2's known missing images, boxes dropped
  under ``box_policy="drop"`` (zero-area, inverted, entirely outside), clipped boxes, exact
  duplicate annotations; ``isfake`` / ``isreflected`` counts; class names with known typos;
- across splits: category lists in a different order (harmless: categories are matched by id),
  categories missing from a split, the same id under different names.

Errors are what would stop or corrupt training (invalid JSON, missing / corrupt / wrong-size
images); warnings are what the loader handles but a user should know. The last line says OK only
for what was checked, and says what was not. Usage::

    report = check_dataset({"train": train_json, "val": val_json},
                           {"train": train_images, "val": val_images}, sample=200)
    print(report.text()); ok = not report.errors
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from o365lib.data.coco import CocoData, gc_paused, read_json, skip_known_missing
from o365lib.data.images import decoded_size, header_size, missing_files, size_problem
from o365lib.data.objects365 import class_name_issue, detect_layout, normalize_class_name, release_of
from o365lib.data.ranking import instance_counts
from o365lib.data.validate import DataValidationError
from o365lib.progress import progress_bar

__all__ = ["DataCheckReport", "SplitCheck", "check_dataset"]

_TRACK_REFERENCE = {"val": "train", "test": "train", "tiny_train": "train", "tiny_val": "tiny_train",
                    "tiny_test": "tiny_train"}


@dataclass
class SplitCheck:
    """What the check found in one split. ``errors`` / ``warnings`` / ``notes`` are full sentences."""

    split: str
    json_path: str
    image_root: str
    release: str | None = None
    layout: str = "coco"
    num_images: int = 0
    num_boxes: int = 0
    num_classes: int = 0
    max_instances: int = 0
    min_instances: int = 0
    zero_instance_classes: list[int] = field(default_factory=list)
    images_without_boxes: int = 0
    category_order: list[int] = field(default_factory=list)
    category_names: dict[int, str] = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)
    headers_read: int = 0  # images opened and their header read, without decoding
    decoded: int = 0  # images fully decoded
    all_decoded: bool = False  # every present image was decoded
    bad_images: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DataCheckReport:
    """Per-split findings plus the comparison of category lists across splits."""

    splits: dict[str, SplitCheck]
    across: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Every error, prefixed with its split."""
        return [f"{name}: {message}" for name, split in self.splits.items() for message in split.errors]

    @property
    def warnings(self) -> list[str]:
        """Every warning (per split, then across splits)."""
        per_split = [f"{name}: {message}" for name, split in self.splits.items() for message in split.warnings]
        return per_split + list(self.across)

    def text(self, *, max_listed: int = 20) -> str:
        """A readable summary; at most ``max_listed`` lines of each list (the count is always given)."""
        headline = f"Data check: {len(self.splits)} split(s), {len(self.errors)} error(s), "
        lines = [headline + f"{len(self.warnings)} warning(s)"]
        for name, split in self.splits.items():
            release = f"Objects365 {split.release}, " if split.release else ""
            lines.append(f"== {name}: {split.json_path} ({release}layout {split.layout}), images under "
                         f"{split.image_root} [{split.seconds:.1f} s]")
            lines.extend(f"  {note}" for note in split.notes)
            lines.extend(_listed("ERROR", split.errors, max_listed))
            lines.extend(_listed("warning", split.warnings, max_listed))
        if self.across:
            lines.append("== across splits")
            lines.extend(_listed("warning", self.across, max_listed))
        counts = self.image_counts()
        lines.append(f"== images checked: {self.coverage()}")
        scope = (f"{counts['decoded']} image(s) decoded, {counts['headers']} header only, "
                 f"{counts['not_opened']} not opened")
        lines.append(f"OK: no errors in what was checked ({scope})" if not self.errors
                     else f"FAILED: {len(self.errors)} error(s) ({scope})")
        return "\n".join(lines)

    def image_counts(self) -> dict[str, int]:
        """Image files over all splits: ``listed``, ``decoded``, ``headers`` (header read only), ``not_opened``."""
        splits = self.splits.values()
        listed = sum(split.num_images for split in splits)
        headers, decoded = sum(s.headers_read for s in splits), sum(s.decoded for s in splits)
        return {"listed": listed, "decoded": decoded, "headers": headers, "not_opened": listed - headers - decoded}

    def coverage(self) -> str:
        """How many image files were checked, in what way, and how many were not (a sentence or two)."""
        counts = self.image_counts()
        text = (f"of {counts['listed']} listed image(s), {counts['decoded']} decoded and {counts['headers']} "
                f"opened for their header only (readable, width and height against the JSON); "
                f"{counts['not_opened']} not opened (missing).")
        unloaded = [name for name, split in self.splits.items() if split.num_images == 0 and split.errors]
        if unloaded:
            text += f" The images of {', '.join(unloaded)} were not checked: the JSON did not load."
        if counts["headers"]:
            text += (" Pixel data cut off after an intact header is found only by decoding: "
                     "--all-images decodes every image.")
        return text


def _listed(kind: str, messages: list[str], max_listed: int) -> list[str]:
    lines = [f"  {kind}: {message}" for message in messages[:max_listed]]
    if len(messages) > max_listed:
        lines.append(f"  ... and {len(messages) - max_listed} more {kind}s")
    return lines


def _ids(ids: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _statistics(result: SplitCheck, data: CocoData) -> None:
    counts = instance_counts(data)
    nonzero = [n for n in counts.values() if n > 0]
    result.num_images, result.num_boxes, result.num_classes = len(data.images), sum(counts.values()), len(counts)
    result.max_instances, result.min_instances = max(nonzero, default=0), min(nonzero, default=0)
    result.zero_instance_classes = sorted(cid for cid, n in counts.items() if n == 0)
    result.images_without_boxes = sum(1 for anns in data.anns_by_image.values() if not anns)
    ratio = f", max/min {result.max_instances / result.min_instances:.0f}" if result.min_instances else ""
    result.notes.append(f"{result.num_classes} classes ({len(result.zero_instance_classes)} without instances), "
                        f"{result.num_images} images ({result.images_without_boxes} without annotations), "
                        f"{result.num_boxes} boxes")
    result.notes.append(f"instances per class: max {result.max_instances}, min {result.min_instances}{ratio}")
    if result.zero_instance_classes:
        result.warnings.append(f"{len(result.zero_instance_classes)} class(es) without instances: category id "
                               f"{_ids(result.zero_instance_classes)}")


def _repairs(result: SplitCheck, data: CocoData, *, box_policy: str) -> None:
    report = data.report
    if report.skipped_images:
        result.warnings.append(f"skipped {len(report.skipped_images)} image(s) listed by the release but not "
                               f"shipped ({report.num_skipped_annotations} annotations): "
                               f"{', '.join(report.skipped_images)}")
    for reason, ids in sorted(report.dropped_ids.items()):
        result.warnings.append(f"{len(ids)} {reason} box(es) dropped (box_policy={box_policy!r}): annotation id "
                               f"{_ids(ids)}")
    if report.num_clipped:
        result.notes.append(f"{report.num_clipped} box(es) clipped to their image: annotation id "
                            f"{_ids(report.clipped_ids)}")
    if report.num_duplicates:
        what = "dropped" if report.duplicates_dropped else "kept"
        result.warnings.append(f"{report.num_duplicates} exact duplicate annotation(s) in "
                               f"{report.num_images_with_duplicates} image(s), {what}: annotation id "
                               f"{_ids(report.duplicate_ids)}")
    flags = {"isfake": [0, 0], "isreflected": [0, 0]}  # [annotations carrying it, marked 1]
    for ann in data.dataset["annotations"]:
        for flag, tally in flags.items():
            if flag in ann:
                tally[0] += 1
                tally[1] += bool(ann[flag])
    for flag, (present, marked) in flags.items():
        if present:
            result.notes.append(f"{flag}: {marked} of {present} annotations marked (kept as training targets)")
    for cid in result.category_order:
        name = result.category_names[cid]
        issue = class_name_issue(name)
        if issue:
            result.notes.append(f"category id={cid} name {name!r} ({issue}) kept as given; matches as "
                                f"{normalize_class_name(name)!r}")


def _open_problem(iid: int, path: Path, *, decode: bool) -> tuple[str | None, tuple[int, int] | None]:
    """``(error, (width, height))``: the header read (or the pixels decoded) of one image file."""
    try:
        return None, decoded_size(path) if decode else header_size(path)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        try:
            why = "empty file, 0 bytes" if path.stat().st_size == 0 else f"{type(error).__name__}: {error}"
        except OSError:
            why = f"{type(error).__name__}: {error}"
        how = "cannot be decoded" if decode else "is not a readable image, its header cannot be read"
        return f"image id={iid}: field 'file_name' {path} {how} ({why})", None


def _images(result: SplitCheck, data: CocoData, *, sample: int, all_images: bool, seed: int) -> None:
    ids = data.image_ids
    names = [data.relative_name(iid) for iid in ids]
    missing = set(missing_files(data.image_root, names))
    present = [(iid, name) for iid, name in zip(ids, names) if name not in missing]
    for iid, name in zip(ids, names):
        if name in missing:
            result.missing_images.append(data.images[iid]["file_name"])
            result.errors.append(f"image id={iid}: field 'file_name' {data.images[iid]['file_name']!r} not found "
                                 f"(looked for {data.image_root / name})")
    chosen = present if all_images else random.Random(seed).sample(present, min(sample, len(present)))
    decode = {iid for iid, _ in chosen}
    result.all_decoded = len(decode) == len(present)
    with progress_bar(total=len(present), desc=f"check-data {result.split}: images",
                      disable=len(present) < 20000) as bar:
        for iid, name in present:
            path = data.image_root / name
            problem, actual = _open_problem(iid, path, decode=iid in decode)
            if actual is not None:
                problem = size_problem(data.images[iid], actual, file=path)
            if iid in decode:
                result.decoded += 1
            else:
                result.headers_read += 1
            if problem:
                result.bad_images.append(data.images[iid]["file_name"])
                result.errors.append(problem)
            bar.update(1)
    scope = "all" if result.all_decoded else f"a random sample of {len(decode)}"
    result.notes.append(f"image files: {len(present)} of {len(ids)} present (existence checked for all); "
                        f"every present file opened: {result.decoded} decoded ({scope}), {result.headers_read} "
                        f"header only (readable, width and height vs the JSON); {len(result.bad_images)} "
                        f"unreadable or of the wrong size")


def _check_split(split: str, json_path: Path, image_root: Path, *, sample: int, all_images: bool,
                 box_policy: str, duplicates: str, seed: int) -> SplitCheck:
    start = time.perf_counter()
    result = SplitCheck(split=split, json_path=str(json_path), image_root=str(image_root),
                        release=release_of(json_path))
    try:
        raw, skipped, num_skipped = skip_known_missing(read_json(json_path))
        names = (img.get("file_name") for img in raw.get("images", []) if isinstance(img, dict)) \
            if isinstance(raw, dict) and isinstance(raw.get("images"), list) else iter(())
        result.layout = detect_layout(names, image_root=image_root)
        with gc_paused():
            data = CocoData.from_dataset(raw, image_root=image_root, source=str(json_path), path=json_path,
                                         box_policy=box_policy, duplicates=duplicates, layout=result.layout)
    except DataValidationError as error:
        result.errors.extend(error.problems)
        result.seconds = time.perf_counter() - start
        return result
    data.report.skipped_images, data.report.num_skipped_annotations = skipped, num_skipped
    result.category_order = [int(cat["id"]) for cat in data.dataset["categories"]]
    result.category_names = {int(cat["id"]): str(cat["name"]) for cat in data.dataset["categories"]}
    _statistics(result, data)
    _repairs(result, data, box_policy=box_policy)
    _images(result, data, sample=sample, all_images=all_images, seed=seed)
    result.seconds = time.perf_counter() - start
    return result


def _compare(name: str, split: SplitCheck, ref_name: str, ref: SplitCheck) -> list[str]:
    """Warnings about ``split``'s category list relative to the reference split's."""
    found = []
    ids, ref_ids = set(split.category_order), set(ref.category_order)
    if ids == ref_ids and split.category_order != ref.category_order:
        pos = next(i for i, (a, b) in enumerate(zip(split.category_order, ref.category_order)) if a != b)
        found.append(f"{name} lists its {len(ids)} categories in a different order from {ref_name} (first at "
                     f"position {pos}: id {split.category_order[pos]} vs id {ref.category_order[pos]}); "
                     f"harmless here: categories are matched by id")
    extra, absent = sorted(ids - ref_ids), sorted(ref_ids - ids)
    if extra:
        found.append(f"{name} has {len(extra)} category id(s) that {ref_name} lacks: {_ids(extra)}")
    if absent and not (name.startswith("tiny") and not ref_name.startswith("tiny")):
        found.append(f"{name} lacks {len(absent)} of {ref_name}'s category id(s): {_ids(absent)}")
    renamed = [cid for cid in sorted(ids & ref_ids) if split.category_names[cid] != ref.category_names[cid]]
    for cid in renamed[:10]:
        found.append(f"category id={cid} is {ref.category_names[cid]!r} in {ref_name} but "
                     f"{split.category_names[cid]!r} in {name}")
    if len(renamed) > 10:
        found.append(f"... and {len(renamed) - 10} more category ids named differently in {ref_name} and {name}")
    return found


def check_dataset(
    files: dict[str, str | Path],
    image_roots: dict[str, str | Path],
    *,
    sample: int = 200,
    all_images: bool = False,
    box_policy: str = "drop",
    duplicates: str = "keep",
    seed: int = 0,
) -> DataCheckReport:
    """Validate every split's JSON and images end to end; see the module docstring.

    Args:
        files: split name -> annotation JSON (e.g. ``{"train": ..., "val": ...}``).
        image_roots: split name -> image folder (a split without one uses its JSON's folder).
        sample: images decoded per split, at random; every other present image has its header
            read (readable, width and height), and all are checked for existence.
        all_images: decode every image instead of a sample (about an hour for Objects365 v2 train
            on one core).
        box_policy, duplicates: as given to ``load_coco`` by training, so the report says what
            training will drop.
        seed: which images the sample takes.
    """
    splits: dict[str, SplitCheck] = {}
    for name, path in files.items():
        path = Path(path)
        root = Path(image_roots.get(name) or path.parent)
        splits[name] = _check_split(name, path, root, sample=sample, all_images=all_images,
                                    box_policy=box_policy, duplicates=duplicates, seed=seed)
    across: list[str] = []
    loaded = [name for name, split in splits.items() if split.category_order]
    for name in loaded:
        ref_name = _TRACK_REFERENCE.get(name)
        if ref_name not in loaded:
            ref_name = loaded[0]
        if ref_name != name:
            across.extend(_compare(name, splits[name], ref_name, splits[ref_name]))
    return DataCheckReport(splits=splits, across=across)
