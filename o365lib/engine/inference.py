"""Inference over a data set into COCO results, and saving them.

``predict`` runs the detector in eval mode over a ``DetectionDataset`` (or a ``CocoData``, wrapped
without caching) in dataset order and returns COCO result dicts with the data set's own category
ids (labels 1..K mapped back through the label map) and ``[x, y, w, h]`` boxes in pixels of the
original image. The model's ``score_thresh`` / ``detections_per_img`` are set for the call and
restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from o365lib.data.dataset import DetectionDataset
from o365lib.engine.precision import autocast_dtype
from o365lib.io import write_json


def detections_to_coco(detections: dict[str, torch.Tensor], *, image_id: int, label_map) -> list[dict]:
    """One image's ``{"boxes" xyxy, "labels" 1..K, "scores"}`` as COCO results."""
    boxes = detections["boxes"].detach().float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    labels = detections["labels"].tolist()
    scores = detections["scores"].detach().float().cpu().tolist()
    return [
        {
            "image_id": int(image_id),
            "category_id": int(label_map.to_category(int(label))),
            "bbox": [round(v, 2) for v in box],
            "score": round(float(score), 6),
        }
        for box, label, score in zip(xywh, labels, scores)
    ]


@contextlib.contextmanager
def inference_session(model: nn.Module, *, device: str | torch.device, amp: bool | str = False) -> Iterator[None]:
    """The model on ``device`` in eval mode, under ``torch.inference_mode`` and, with ``amp``, autocast;
    its training flag is restored afterwards. Shared by ``predict`` and ``predict_tta``.

    ``amp`` means what it means in training (``o365lib.engine.precision.autocast_dtype``): on CUDA any
    truthy value autocasts (bf16, or fp16 where bf16 is missing, or for ``"fp16"``); on a CPU only
    ``"bf16"`` does, and only where the CPU runs bf16 natively (elsewhere float32). The heads hand their
    scores and box deltas back in float32, so boxes are decoded and suppressed in float32.
    """
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    dtype = autocast_dtype(amp, device)
    autocast = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    try:
        with torch.inference_mode(), autocast:
            yield
    finally:
        model.train(was_training)


def image_batches(
    dataset, *, batch_size: int, device: str | torch.device, progress: bool = False, desc: str = "predict"
) -> Iterator[tuple[list[torch.Tensor], list[int]]]:
    """The inference loop's batches, in dataset order: ``(images on device, their image ids)``.

    ``dataset[i] -> (CHW image, target with "image_id")``; the last batch may be smaller.
    """
    starts = range(0, len(dataset), batch_size)
    if progress:
        from o365lib.progress import progress_bar

        starts = progress_bar(iterable=starts, total=len(starts), desc=desc, unit="batch")
    for start in starts:
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        yield [image.to(device) for image, _ in items], [int(target["image_id"]) for _, target in items]


def predict(
    model: nn.Module,
    dataset,
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    max_dets: int = 100,
    score_threshold: float = 0.001,
    label_map=None,
    amp: bool | str = False,
    progress: bool = False,
) -> list[dict]:
    """COCO results ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` for every image.

    Args:
        dataset: a ``DetectionDataset`` (any ``dataset[i] -> (image, {"image_id", ...})``) or a
            ``CocoData`` (wrapped in ``DetectionDataset(cache_images=False)``).
        label_map: labels -> category ids; default ``dataset.label_map``.
        amp: autocast as in training (``inference_session``): ``"bf16"`` on a CPU with native bf16
            (1.34x on the default detector's val predictions, mAP within 0.02; ``bench/README.md``), any
            truthy value on CUDA.
    """
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    if not hasattr(dataset, "__getitem__") and hasattr(dataset, "anns_by_image"):
        dataset = DetectionDataset(dataset, cache_images=False)
    label_map = label_map if label_map is not None else getattr(dataset, "label_map", None)
    if label_map is None:
        raise ValueError("predict: pass label_map= or a dataset with a .label_map")
    saved = {
        name: getattr(model, name) for name in ("score_thresh", "detections_per_img") if hasattr(model, name)
    }
    model.score_thresh, model.detections_per_img = float(score_threshold), int(max_dets)
    results: list[dict] = []
    try:
        with inference_session(model, device=device, amp=amp):
            for images, image_ids in image_batches(dataset, batch_size=batch_size, device=device,
                                                   progress=progress, desc="predict"):
                for image_id, output in zip(image_ids, model(images)):
                    results.extend(detections_to_coco(output, image_id=image_id, label_map=label_map))
    finally:
        for name, value in saved.items():
            setattr(model, name, value)
    return results


def save_results(results: list[dict], path: str | Path) -> Path:
    """Write COCO results JSON atomically (temporary file + rename); creates the folder."""
    for index, result in enumerate(results[:1]):
        missing = {"image_id", "category_id", "bbox", "score"} - set(result)
        if missing:
            raise ValueError(f"save_results: result {index} lacks {sorted(missing)}")
    return write_json(path, results, indent=None)
