"""Detections and ground truth as columns of numpy arrays (no Python dict per box).

At Objects365 scale (80,000 validation images x 100 detections = 8M results) one Python dict per
detection costs gigabytes before any evaluation starts. Here a detection set is five arrays:
``image_id`` (int64), ``category_id`` (int64), ``bbox`` ([N, 4] float64, COCO ``[x, y, w, h]``),
``score`` (float64). Float64 on purpose: COCO results JSON holds doubles and pycocotools computes
in doubles, so the numbers stay identical.

Accepted inputs (:func:`detection_columns`): a list of COCO result dicts, a dict of arrays with
those four keys, an ``[N, 7]`` array in pycocotools' ``loadNumpyAnnotations`` layout
``(image_id, x, y, w, h, score, category_id)``, a ``.npz`` file with the four keys, or a COCO
results JSON file, which :func:`load_results` reads in blocks so that at most one block of dicts
exists at a time.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from o365lib.data import DataValidationError
from o365lib.data.coco import gc_paused

FIELDS = ("image_id", "category_id", "bbox", "score")
_BLOCK_CHARS = 1 << 24  # 16M characters of JSON text per parsed block (~150k results)
_OBJECT_END = re.compile(r"\}\s*,")


@dataclass
class DetectionColumns:
    """COCO bbox results as arrays; row ``i`` is result ``i`` of the input, in input order."""

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def take(self, index: np.ndarray) -> DetectionColumns:
        """The rows at ``index`` (an integer or boolean array), as a new object."""
        return DetectionColumns(self.image_id[index], self.category_id[index], self.bbox[index],
                                self.score[index])


@dataclass
class GroundTruthColumns:
    """The annotations of a COCO dict as arrays (annotation order), plus sorted image/category ids."""

    image_ids: np.ndarray  # sorted unique ids of the images
    category_ids: np.ndarray  # sorted unique ids of the categories
    ann_id: np.ndarray
    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    #: ignored ground truth that is not crowd (LVIS's ``ignore`` flag); None = only crowd is ignored
    ignore: np.ndarray | None = None


def gt_columns(dataset: Mapping) -> GroundTruthColumns:
    """Arrays from a COCO ground-truth dict; ``area`` falls back to w*h where it is absent."""
    anns = dataset.get("annotations", [])
    n = len(anns)
    bbox = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(n, 4)
    area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
    missing = np.isnan(area)
    area[missing] = bbox[missing, 2] * bbox[missing, 3]
    return GroundTruthColumns(
        image_ids=np.unique(np.array([img["id"] for img in dataset.get("images", [])], dtype=np.int64)),
        category_ids=np.unique(np.array([c["id"] for c in dataset.get("categories", [])], dtype=np.int64)),
        ann_id=np.array([a.get("id", 0) for a in anns], dtype=np.int64),
        image_id=np.array([a["image_id"] for a in anns], dtype=np.int64),
        category_id=np.array([a["category_id"] for a in anns], dtype=np.int64),
        bbox=bbox,
        area=area,
        iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
    )


def _from_dicts(results: list, *, source: str, offset: int = 0) -> DetectionColumns:
    """Columns from result dicts; a bad record is named by its index in the whole input."""
    try:
        image_id = _exact_int(np.array([r["image_id"] for r in results]), "image_id", source, offset)
        category_id = _exact_int(np.array([r["category_id"] for r in results]), "category_id", source, offset)
        score = np.array([r["score"] for r in results], dtype=np.float64)
        bbox = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(len(results), 4)
    except (KeyError, TypeError, ValueError):
        _raise_first_bad_record(results, source=source, offset=offset)
        raise
    return DetectionColumns(image_id, category_id, bbox, score)


def _raise_first_bad_record(results: list, *, source: str, offset: int) -> None:
    for index, r in enumerate(results, start=offset):
        if not isinstance(r, Mapping):
            raise DataValidationError(source, [f"result index={index} is not a dict: {r!r:.80}"])
        for key in FIELDS:
            if key not in r:
                raise DataValidationError(source, [f"result index={index} has no field {key!r}"])
        box = r["bbox"]
        if not isinstance(box, (list, tuple, np.ndarray)) or len(box) != 4 or not all(
                isinstance(v, (int, float, np.number)) for v in box):
            raise DataValidationError(source, [
                f"result index={index} field 'bbox' = {box!r} is not 4 numbers [x, y, w, h]"])
        for key in ("image_id", "category_id", "score"):
            value = r[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise DataValidationError(source, [f"result index={index} field {key!r} = {value!r} is not a number"])


def load_results(path: str | os.PathLike) -> DetectionColumns:
    """Read a COCO results JSON file (a list of result dicts) into columns, block by block.

    The text is cut after a ``},`` into blocks of about 16M characters; each block is parsed as
    one JSON list and turned into arrays before the next is read, so memory holds one block of
    dicts at a time. A block that does not parse on its own (a ``},`` inside a string) is parsed
    object by object with ``json.JSONDecoder.raw_decode``, which is exact.
    """
    with gc_paused():
        return _load_results(path)


def _load_results(path: str | os.PathLike) -> DetectionColumns:
    source = str(path)
    parts: list[DetectionColumns] = []
    count = 0
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        head = f.read(_BLOCK_CHARS).lstrip()
        if not head:
            raise DataValidationError(source, ["the file is empty (expected a JSON list of COCO result dicts)"])
        if not head.startswith("["):
            kind = "a JSON object" if head.startswith("{") else "not a JSON list"
            raise DataValidationError(source, [
                (f"the results are {kind}, expected a JSON list of COCO result dicts "
                "([{\"image_id\", \"category_id\", \"bbox\", \"score\"}, ...])")])
        buffer, eof = head[1:], False
        while buffer.strip() or not eof:
            if not eof:
                more = f.read(_BLOCK_CHARS)
                eof = not more
                buffer += more
            cut = None
            if eof:
                body = buffer.rstrip()
                if not body.endswith("]"):
                    raise DataValidationError(source, ["the JSON list is not closed by ']'"])
                body, buffer = body[:-1], ""
            else:
                for cut in _OBJECT_END.finditer(buffer, max(0, len(buffer) - (1 << 20))):
                    pass
                if cut is None:
                    continue  # one object longer than the look-back window: read more
                body, buffer = buffer[:cut.start() + 1], buffer[cut.start() + 1:]
            body = body.lstrip()
            body = body.removeprefix(",")
            if not body.strip():
                continue
            fast = _typed_block(body)
            if fast is not None:
                parts.append(fast)
                count += len(fast)
                continue
            try:
                records = json.loads("[" + body + "]")
            except json.JSONDecodeError:  # the cut fell inside a string: parse up to the last whole record
                records, rest = _decode_objects(decoder, body, source=source, final=eof, offset=count)
                buffer = rest + buffer
                if not records:
                    continue
            parts.append(_from_dicts(records, source=source, offset=count))
            count += len(records)
            del records
    return concat_columns(parts)


def _result_decoder():
    """msgspec's typed JSON decoder for a list of COCO results, or None without msgspec."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency; the plain json path still works
        return None

    class Result(msgspec.Struct):  # other fields (segmentation, ...) are skipped while parsing
        image_id: int | float
        category_id: int | float
        bbox: tuple[float, float, float, float]
        score: float

    return msgspec.json.Decoder(list[Result])


_DECODER = _result_decoder()


def _typed_block(body: str) -> DetectionColumns | None:
    """Columns from one block of result objects, parsed by msgspec straight into typed records.

    About 3x faster than ``json.loads`` into dicts. Anything it does not accept as is (NaN
    literals, a missing field, a 3-number box, a cut inside a string) returns None, and the block
    takes the plain ``json`` path, which parses what is valid and names what is not.
    """
    if _DECODER is None:
        return None
    try:
        records = _DECODER.decode("[" + body + "]")
    except Exception:  # noqa: BLE001 - msgspec.DecodeError / ValidationError: the exact path decides
        return None
    n = len(records)
    try:
        image_id = _exact_int(np.array([r.image_id for r in records]), "image_id", "block")
        category_id = _exact_int(np.array([r.category_id for r in records]), "category_id", "block")
    except DataValidationError:
        return None
    bbox = np.fromiter(itertools.chain.from_iterable(r.bbox for r in records), np.float64, count=4 * n).reshape(n, 4)
    score = np.fromiter((r.score for r in records), np.float64, count=n)
    return DetectionColumns(image_id, category_id, bbox, score)


def _decode_objects(decoder: json.JSONDecoder, text: str, *, source: str, final: bool,
                    offset: int) -> tuple[list, str]:
    """The whole objects at the start of ``text`` and the unparsed rest (an error if ``final``)."""
    out, pos, n = [], 0, len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n:
            return out, ""
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            if final:
                raise DataValidationError(source, [f"result index={offset + len(out)} is not valid JSON: {err}"]) from None
            return out, text[pos:]
        out.append(obj)
        pos = end


def concat_columns(parts: list[DetectionColumns]) -> DetectionColumns:
    """One ``DetectionColumns`` from several (an empty list gives zero rows)."""
    if not parts:
        return DetectionColumns(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
    if len(parts) == 1:
        return parts[0]
    return DetectionColumns(*(np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS))


def detection_columns(detections: Any, *, source: str = "detections") -> DetectionColumns:
    """Columns from any accepted input (see the module docstring); shapes and dtypes are checked."""
    if isinstance(detections, DetectionColumns):
        cols = detections
    elif isinstance(detections, (str, os.PathLike)):
        source = str(detections)
        if str(detections).endswith(".npz"):
            with np.load(detections) as data:
                cols = _from_mapping(data, source=source)
        else:
            cols = load_results(detections)
    elif isinstance(detections, np.ndarray):
        if detections.ndim != 2 or detections.shape[1] != 7:
            raise DataValidationError(source, [
                ("an array of results must be [N, 7] (image_id, x, y, w, h, score, category_id), "
                 f"got shape {detections.shape}")])
        arr = np.asarray(detections, dtype=np.float64)
        cols = DetectionColumns(_exact_int(arr[:, 0], "image_id", source), _exact_int(arr[:, 6], "category_id", source),
                                np.ascontiguousarray(arr[:, 1:5]), np.ascontiguousarray(arr[:, 5]))
    elif isinstance(detections, Mapping):
        cols = _from_mapping(detections, source=source)
    elif isinstance(detections, (list, tuple)):
        cols = _from_dicts(list(detections), source=source)
    else:
        raise DataValidationError(source, [
            ("expected a list of COCO result dicts, a dict of arrays, an [N, 7] array or a path, "
             f"not {type(detections).__name__}")])
    n = len(cols.score)
    for name, shape in (("image_id", (n,)), ("category_id", (n,)), ("bbox", (n, 4)), ("score", (n,))):
        if getattr(cols, name).shape != shape:
            raise DataValidationError(source, [f"field {name!r} has shape {getattr(cols, name).shape}, expected {shape}"])
    check_values(cols, source=source)
    return cols


def check_values(cols: DetectionColumns, *, source: str) -> None:
    """Scores must be finite and >= 0, box coordinates finite, widths and heights not negative.

    The first offending record is named by its index in the input and its field, e.g.
    ``result index=7 field 'bbox' = [5.0, 5.0, nan, 30.0]: w is NaN``.
    """
    bad_score = np.flatnonzero(~np.isfinite(cols.score) | (cols.score < 0))
    finite_box = np.isfinite(cols.bbox)
    bad_box = np.flatnonzero(~finite_box.all(axis=1) | (cols.bbox[:, 2] < 0) | (cols.bbox[:, 3] < 0))
    first_score = int(bad_score[0]) if bad_score.size else None
    first_box = int(bad_box[0]) if bad_box.size else None
    if first_score is not None and (first_box is None or first_score <= first_box):
        value = float(cols.score[first_score])
        what = "NaN" if np.isnan(value) else "infinite" if not np.isfinite(value) else "negative"
        raise DataValidationError(source, [(f"result index={first_score} field 'score' is {what} ({value!r}; "
                                           "a score is a finite confidence >= 0)")])
    if first_box is not None:
        box = cols.bbox[first_box]
        problems = []
        for name, v in zip("xywh", box.tolist()):
            if np.isnan(v):
                problems.append(f"{name} is NaN")
            elif not np.isfinite(v):
                problems.append(f"{name} is infinite")
            elif name in "wh" and v < 0:
                problems.append(f"{name} is negative")
        raise DataValidationError(source, [
            (f"result index={first_box} field 'bbox' = {box.tolist()!r}: {', '.join(problems)} "
            "(COCO boxes are [x, y, width, height] with finite values and width, height >= 0)")])


def _from_mapping(data: Mapping, *, source: str) -> DetectionColumns:
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise DataValidationError(source, [f"columns {missing} are missing (need {list(FIELDS)})"])
    n = len(data["score"])
    return DetectionColumns(
        _exact_int(np.asarray(data["image_id"]), "image_id", source),
        _exact_int(np.asarray(data["category_id"]), "category_id", source),
        np.asarray(data["bbox"], dtype=np.float64).reshape(n, -1),
        np.asarray(data["score"], dtype=np.float64),
    )


def _exact_int(values: np.ndarray, name: str, source: str, offset: int = 0) -> np.ndarray:
    """int64 ids; a float id must be a whole number (1.0 is 1, 1.5 is an error, not image 1)."""
    if values.dtype.kind in "iu" or (values.size == 0 and values.dtype.kind == "f"):
        return values.astype(np.int64, copy=False)
    if values.dtype.kind != "f":
        raise TypeError(f"{name} values of dtype {values.dtype}")
    as_int = values.astype(np.int64)
    bad = np.flatnonzero(as_int != values)
    if bad.size:
        raise DataValidationError(source, [
            f"result index={offset + int(bad[0])} field {name!r} = {values[bad[0]].item()!r} is not an integer"])
    return as_int
