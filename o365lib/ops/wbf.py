"""Weighted boxes fusion (Solovyev et al. 2019): the public functions, checks and backend choice.

WBF merges the boxes of several models (or test-time augmentations): per label, boxes are
visited in descending ``score * model_weight`` order; each joins the first cluster whose
current fused box overlaps it with IoU ``> iou_threshold`` (the best one), or starts a new
cluster.  A cluster's fused box is the score-weighted mean of its members; its score
depends on ``conf_type``.

Two backends compute it (:mod:`o365lib.ops.backend`): on CPU a numba kernel
(:mod:`o365lib.ops.wbf_numba`, tens of microseconds for an image of 3 x 300 boxes, so one
call per image, ensemble-boxes' call shape, is cheap), elsewhere torch ops vectorised over
all (image, label) groups (:mod:`o365lib.ops.wbf_torch`).  Both give the same outputs.

Semantics follow ensemble-boxes 1.0.9 ``weighted_boxes_fusion``, roundings included:
boxes with ``score < skip_box_threshold`` skipped, corners ordered then clipped to [0, 1],
zero-area boxes skipped, clusters matched with IoU ``> iou_threshold`` against the current
fused boxes, and the confidence rescaling of each ``conf_type``:

* ``avg``: ``mean(s * w) * min(num_models, n) / sum(w)`` (``allow_overflow``: ``* n``);
* ``max``: ``max(s * w) / max(w)``;
* ``box_and_model_avg``: ``sum(s * w) / sum(w_members) * sum(w of distinct models) / sum(w)``;
* ``absent_model_aware_avg``: ``sum(s * w) / (sum(w_members) + sum(w of absent models))``.

Known flaw handled: with ``avg`` and unequal weights, a cluster of several boxes from a
heavy model scores above 1 (e.g. weights (2, 1), two boxes of model 0 at 0.9: 1.2).
``clip_scores=True`` caps scores at 1.  The default is ``False`` (exact ensemble-boxes
parity, and no ties created at 1.0 among the top-ranked boxes).

Differences: ties in ``score * weight`` are visited in input order (model, then index);
ensemble-boxes' unstable numpy sort can visit them in another order.  Outputs are sorted
by score descending, ties by label then cluster creation (ensemble-boxes: unstable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from o365lib.ops.backend import one_cpu_thread, resolve_backend
from o365lib.ops.wbf_torch import wbf_torch

__all__ = ["CONF_TYPES", "batched_weighted_boxes_fusion", "weighted_boxes_fusion"]

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


def _to_numpy(x, dtype, name: str) -> np.ndarray:
    """A tensor, array or (nested) list as a numpy array of ``dtype`` (labels: floats truncated;
    ``None``: keep the dtype)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        x = (x.double() if x.dtype == torch.bfloat16 else x).cpu().numpy()
    try:
        arr = np.asarray(x)
        if dtype is None:
            return arr
        if dtype is np.int64 and arr.dtype.kind == "f":
            arr = arr.astype(np.float64)  # ensemble-boxes: int(label), truncation
        return arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"weighted_boxes_fusion: cannot convert {name} to an array: {err}") from None


def _threshold_as_compared(threshold: float, scores) -> float:
    """``threshold`` as ``scores >= threshold`` sees it, in float64: rounded to a float32 (or
    float16) scores' dtype, as numpy and torch compare (ensemble-boxes keeps a float32 score
    of 0.7 at ``skip_box_thr=0.7``: float32(0.7) < 0.7 in float64, not in float32)."""
    if isinstance(scores, torch.Tensor):
        if scores.dtype == torch.float64:
            return threshold
        return float(torch.tensor(threshold, dtype=torch.result_type(scores, threshold)))
    dtype = np.asarray(scores).dtype
    return float(dtype.type(threshold)) if dtype.kind == "f" else threshold


def _check_options(weights, num_models: int, conf_type: str, iou_threshold: float) -> np.ndarray:
    if conf_type not in CONF_TYPES:
        raise ValueError(f"weighted_boxes_fusion: conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"weighted_boxes_fusion: iou_threshold must be in [0, 1], got {iou_threshold}")
    if weights is None:
        return np.ones(num_models)
    w = _to_numpy(weights, np.float64, "weights").reshape(-1)
    if w.size != num_models:
        raise ValueError(f"weighted_boxes_fusion: {w.size} weights for {num_models} models")
    if not bool((w > 0).all()):
        raise ValueError(f"weighted_boxes_fusion: weights must be > 0, got {w.tolist()}")
    return w


def weighted_boxes_fusion(
    boxes_list: Sequence,
    scores_list: Sequence,
    labels_list: Sequence,
    *,
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    clip_scores: bool = False,
    allow_overflow: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fuse one image's boxes from several models (ensemble-boxes' call shape).

    Args:
        boxes_list: per model, ``[n_m, 4]`` normalised x1y1x2y2 boxes (tensor, array or list).
        scores_list: per model, ``[n_m]`` scores.
        labels_list: per model, ``[n_m]`` integer labels (floats holding integers are accepted).
        weights: per-model weights (> 0); default all 1.
        iou_threshold: a box joins a cluster when IoU with its fused box is ``> iou_threshold``.
        skip_box_threshold: boxes with ``score < skip_box_threshold`` are ignored (compared in
            the scores' dtype, like ensemble-boxes: a float32 0.7 is kept at 0.7).
        conf_type: one of :data:`CONF_TYPES`.
        clip_scores: cap fused scores at 1 (the 'avg' + weights overflow); default parity mode.
        allow_overflow: ensemble-boxes' ``allows_overflow`` for 'avg' (``n`` instead of
            ``min(num_models, n)``).
        backend: ``"auto"`` (numba on CPU when installed, else torch), ``"numba"`` or ``"torch"``.

    Returns:
        ``(boxes [K, 4] float32, scores [K] float32, labels [K] int64)`` sorted by score, descending,
        on the device of the first boxes tensor (CPU for arrays and lists).
    """
    if not (len(boxes_list) == len(scores_list) == len(labels_list)):
        raise ValueError(
            "weighted_boxes_fusion: boxes_list, scores_list and labels_list differ in length "
            f"({len(boxes_list)}, {len(scores_list)}, {len(labels_list)})"
        )
    if len(boxes_list) == 0:
        raise ValueError("weighted_boxes_fusion: no models given")
    device = next((b.device for b in boxes_list if isinstance(b, torch.Tensor)), torch.device("cpu"))
    boxes, scores, labels = [], [], []
    for m, (b, s, lab) in enumerate(zip(boxes_list, scores_list, labels_list)):
        b = _to_numpy(b, np.float64, f"boxes_list[{m}]").reshape(-1, 4)
        s = _to_numpy(s, None, f"scores_list[{m}]").reshape(-1)
        lab = _to_numpy(lab, np.int64, f"labels_list[{m}]").reshape(-1)
        if not (b.shape[0] == s.size == lab.size):
            raise ValueError(
                f"weighted_boxes_fusion: model {m} has {b.shape[0]} boxes, {s.size} "
                f"scores and {lab.size} labels"
            )
        boxes.append(b)
        scores.append(s)
        labels.append(lab)
    # skip low scores comparing in each model's score dtype, as ensemble-boxes does
    skip = {_threshold_as_compared(skip_box_threshold, s) for s in scores}
    if len(skip) > 1:  # mixed dtypes: filter per model here
        kept = [s >= skip_box_threshold for s in scores]
        boxes, scores, labels = ([x[k] for x, k in zip(xs, kept)] for xs in (boxes, scores, labels))
        skip = {-np.inf}
    scores = [_to_numpy(s, np.float64, "scores") for s in scores]
    model_ids = np.repeat(np.arange(len(boxes)), [s.size for s in scores])
    out = _fuse(
        np.concatenate(boxes),
        np.concatenate(scores),
        np.concatenate(labels),
        model_ids=model_ids,
        image_ids=np.zeros(model_ids.size, dtype=np.int64),
        device=device,
        num_models=len(boxes_list),
        weights=weights,
        iou_threshold=iou_threshold,
        skip_box_threshold=skip.pop(),
        conf_type=conf_type,
        clip_scores=clip_scores,
        allow_overflow=allow_overflow,
        backend=backend,
    )
    return out[0], out[1], out[2]


def batched_weighted_boxes_fusion(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    model_ids: torch.Tensor,
    num_models: int,
    image_ids: torch.Tensor | None = None,
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    clip_scores: bool = False,
    allow_overflow: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """WBF of many images in one call; each (image, label) group is fused independently.

    Args:
        boxes, scores, labels: flat ``[N, 4]``, ``[N]``, ``[N]`` tensors over all models and images.
        model_ids: ``[N]`` model index in ``0..num_models-1`` of each box.
        num_models: number of models (matters for 'avg' and the absent-model rules).
        image_ids: ``[N]`` integer image ids (default: all one image).
        Other arguments as :func:`weighted_boxes_fusion`.

    Returns:
        ``(boxes float32, scores float32, labels int64, image_ids int64)`` on ``boxes``' device,
        sorted by image id, then score descending.
    """
    n = boxes.reshape(-1, 4).shape[0]
    if image_ids is None:
        image_ids = torch.zeros(n, dtype=torch.int64, device=boxes.device)
    return _fuse(
        boxes,
        scores,
        labels,
        model_ids=model_ids,
        image_ids=image_ids,
        device=boxes.device,
        num_models=num_models,
        weights=weights,
        iou_threshold=iou_threshold,
        skip_box_threshold=_threshold_as_compared(skip_box_threshold, scores),
        conf_type=conf_type,
        clip_scores=clip_scores,
        allow_overflow=allow_overflow,
        backend=backend,
    )


def _fuse(boxes, scores, labels, *, model_ids, image_ids, device, num_models, weights, backend, **options):
    """Check flat inputs (tensors or arrays), then run the chosen backend."""
    w = _check_options(weights, num_models, options["conf_type"], options["iou_threshold"])
    use_numba = resolve_backend(backend, device, caller="weighted_boxes_fusion") == "numba"
    to = _to_numpy if use_numba else _to_tensor(device)
    boxes = to(boxes, np.float64, "boxes").reshape(-1, 4)
    scores, labels = to(scores, np.float64, "scores").reshape(-1), to(labels, np.int64, "labels").reshape(-1)
    model_ids = to(model_ids, np.int64, "model_ids").reshape(-1)
    image_ids = to(image_ids, np.int64, "image_ids").reshape(-1)
    n = boxes.shape[0]
    if not (scores.shape[0] == labels.shape[0] == model_ids.shape[0] == image_ids.shape[0] == n):
        raise ValueError(
            "weighted_boxes_fusion: boxes, scores, labels, model_ids and image_ids differ in length"
        )
    if n and (int(model_ids.min()) < 0 or int(model_ids.max()) >= num_models):
        raise ValueError(f"weighted_boxes_fusion: model_ids must be in [0, {num_models})")
    if use_numba:
        from o365lib.ops.wbf_numba import wbf_arrays  # lazy: numba loads in ~0.2 s

        out = wbf_arrays(
            boxes, scores, labels, model_ids=model_ids, image_ids=image_ids, weights=w, **options
        )
        return tuple(torch.from_numpy(x) for x in out)
    if bool(torch.isnan(scores).any()) or bool(torch.isnan(boxes).any()):
        raise ValueError("weighted_boxes_fusion: boxes or scores contain NaN")
    with one_cpu_thread(device):
        return wbf_torch(boxes, scores, labels, model_ids=model_ids, image_ids=image_ids,
                         weights=torch.as_tensor(w, device=device), **options)  # fmt: skip


def _to_tensor(device: torch.device):
    """A converter like :func:`_to_numpy` that gives tensors on ``device`` (the torch backend)."""
    dtypes = {np.float64: torch.float64, np.int64: torch.int64}

    def convert(x, dtype, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.from_numpy(_to_numpy(x, dtype, name))
        elif dtype is np.int64 and x.dtype.is_floating_point:
            x = x.to(torch.float64)  # ensemble-boxes: int(label), truncation
        return x.detach().to(device=device, dtype=dtypes[dtype])

    return convert
