"""Train-or-load steps for predictions and metrics, keyed by everything that determines them.

Predictions of a model on a split live in ``predictions/<model key>/<split>-<key>.json``; the key
covers the split file's content, the evaluation settings that shape them (``score_threshold``, the
per-image cap) and test-time augmentation. They are made once with the larger per-image cap that
fixed AP needs (``eval.fixed_ap_max_dets``); the standard AP keeps the top ``eval.max_dets`` per image
of them, which is exactly what the detector with that cap returns. Category ids come from the
*model's* label map; a split whose categories the model does not know is a clear error.

Results travel as :class:`LazyResults`: a key known before they are read or computed (a predictions
file's content hash; for merged or fused results, their inputs' keys and the settings), so that a
cached metrics file is found without parsing or recomputing the results behind it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from o365lib.book.artefacts import datasets, resolver
from o365lib.book.artefacts.keys import content_hash, key_of
from o365lib.book.artefacts.models import ModelRun, build_model
from o365lib.calibration import norcal_probabilities
from o365lib.data import DetectionDataset
from o365lib.data.coco import read_json
from o365lib.engine import predict
from o365lib.evaluation import evaluate
from o365lib.evaluation import fixed_ap as fixed_ap_metrics
from o365lib.io import write_json
from o365lib.ops.top_k import top_k_per_group
from o365lib.tta import predict_tta

TRACK_TRAIN = {"full": "train", "tiny": "tiny_train"}


def _check_categories(ctx, run: ModelRun, split: str) -> set[int]:
    """Category ids of ``split``; an error when the model cannot answer for all of them."""
    split_ids = set(datasets.load_split(ctx, split).categories)
    missing = sorted(split_ids - set(run.category_ids))
    if missing:
        raise ValueError(f"{datasets.split_file(ctx, split)}: categories {missing[:10]} ({len(missing)} in all) "
                         f"are not classes of model {run.key}, which was trained on other categories")
    return split_ids


@dataclass(frozen=True)
class LazyResults:
    """COCO results known by ``key`` before they exist in memory; ``load()`` reads or computes them."""

    key: str
    make: Callable[[], list]

    def load(self) -> list:
        return self.make()

    @classmethod
    def of_file(cls, path: Path) -> LazyResults:
        """A results file, keyed by its content hash (no JSON parsing)."""
        return cls(key=f"file-{content_hash(path)}", make=lambda: read_json(path))

    @classmethod
    def derived(cls, make: Callable[[], list], *, inputs, settings: dict, code: tuple = ()) -> LazyResults:
        """Results computed from others (a merge, a fusion, a calibration), keyed by the inputs' keys (a
        nested structure of :class:`LazyResults`), the computation's ``settings`` and the source files of
        the functions in ``code`` (editing that module is a new key)."""
        def keys(item):
            if isinstance(item, LazyResults):
                return item.key
            if isinstance(item, (list, tuple)):
                return [keys(i) for i in item]
            return item

        sources = [f"{fn.__module__}.{fn.__qualname__}:{content_hash(inspect.getsourcefile(fn))}" for fn in code]
        return cls(key=key_of({"inputs": keys(inputs), "settings": settings, "code": sources}, length=16),
                   make=make)


def results_cap(ctx) -> int:
    """Detections kept per image in stored, merged or fused results: enough for fixed AP as well."""
    return max(ctx.cfg.eval.max_dets, ctx.cfg.eval.fixed_ap_max_dets)


def inference_amp(ctx) -> dict:
    """The profile's ``eval.amp`` as a key entry, empty when predictions run in float32 (so those keys are
    the ones they were before the setting existed)."""
    return {"amp": ctx.cfg.eval.amp} if ctx.cfg.eval.amp else {}


def ensure_predictions(ctx, run: ModelRun, *, split: str = "val", tta: dict | None = None,
                       calibration: dict | None = None) -> list:
    """COCO results of a model on a split, cached by key (``lazy_predictions``, read)."""
    return lazy_predictions(ctx, run, split=split, tta=tta, calibration=calibration).load()


def lazy_predictions(ctx, run: ModelRun, *, split: str = "val", tta: dict | None = None,
                     calibration: dict | None = None) -> LazyResults:
    """COCO results of a model on a split, predicted once and cached by key; not read until loaded.

    ``tta``: test-time augmentation options (``o365lib.tta.predict_tta``); ``calibration``:
    ``{"norcal_gamma", "class_counts"}`` applies NorCal to the model's class probabilities before
    thresholding and NMS (``o365lib.calibration``).
    """
    ev = ctx.cfg.eval
    cap = results_cap(ctx)
    key = key_of({"split": datasets.split_hash(ctx, split), "score_threshold": ev.score_threshold,
                  "max_dets": cap, "tta": tta, "calibration": calibration, **inference_amp(ctx)})
    path = Path(ctx.profile_dir) / "predictions" / run.key / f"{split}-{key}.json"
    split_ids = _check_categories(ctx, run, split)

    def build():
        model = build_model(run, device=ctx.device).eval()
        if calibration:

            model.score_calibration = partial(norcal_probabilities, class_counts=calibration["class_counts"],
                                              gamma=calibration["norcal_gamma"])
        dataset = DetectionDataset(datasets.load_split(ctx, split), cache_images=False)
        common = {"batch_size": ev.batch_size, "device": ctx.device, "max_dets": cap,
                  "score_threshold": ev.score_threshold, "label_map": run.label_map, "amp": ev.amp}
        if tta:
            results = predict_tta(model, dataset, **common, **tta)
        else:
            results = predict(model, dataset, **common)
        return [r for r in results if r["category_id"] in split_ids]

    return LazyResults.of_file(resolver.resolve(ctx.profile_dir, kind="predictions", name=f"{run.key}/{split}",
                                                path=path, make=build,
                                                write=lambda value, p: write_json(p, value, indent=None)))


def cap_per_image(results: list, max_dets: int) -> list:
    """The ``max_dets`` best-scored results of each image (the detector's per-image cap)."""
    first: dict = {}  # images in order of first appearance, each one's best first (ties: input order)
    images = [first.setdefault(r["image_id"], len(first)) for r in results]
    return [results[i] for i in top_k_per_group([r["score"] for r in results], images, max_dets)]


def evaluate_results(ctx, results: list | LazyResults, *, split: str = "val", name: str, track: str = "full",
                     fixed_ap: bool = True) -> dict:
    """COCO AP overall, per class, per rank range and LVIS bucket, plus fixed AP; cached by key.

    ``results``: a list (keyed by its content) or :class:`LazyResults` (keyed by its key, loaded only
    when the metrics are not cached yet). Standard AP uses the top ``eval.max_dets`` results per image;
    fixed AP (Dave et al. 2021) all of ``results`` with the per-class top-K over the split.
    """
    ev = ctx.cfg.eval
    ranges = tuple(ev.ranges) if track == "full" else ("all",)
    train_split = TRACK_TRAIN[track]
    lazy = isinstance(results, LazyResults)
    key = key_of({"results": results.key if lazy else key_of(results, length=16),
                        "split": datasets.split_hash(ctx, split), "train": datasets.split_hash(ctx, train_split),
                        "ranges": ranges, "max_dets": ev.max_dets, "fixed_ap": fixed_ap})
    path = Path(ctx.profile_dir) / "metrics" / f"{name}-{split}-{key}.json"

    def build():
        detections = results.load() if lazy else results
        gt = datasets.load_split(ctx, split).dataset
        train = datasets.load_split(ctx, train_split).dataset
        rank_of = datasets.ranking(ctx, track)
        metrics = evaluate(gt, cap_per_image(detections, ev.max_dets), ranking=rank_of, train_gt=train,
                           ranges=ranges, max_dets=ev.max_dets)
        if fixed_ap:
            metrics["fixed_ap"] = fixed_ap_metrics(gt, detections, ranking=rank_of, ranges=ranges)
        return metrics

    return resolver.resolve(ctx.profile_dir, kind="metrics", name=f"{name}-{split}", path=path, make=build,
                            write=lambda value, p: write_json(p, value), read=read_json)


def model_metrics(ctx, run: ModelRun, *, split: str = "val", tta: dict | None = None, track: str = "full") -> dict:
    """Predictions and metrics of one model on a split (the common case of a chapter)."""
    results = lazy_predictions(ctx, run, split=split, tta=tta)
    return evaluate_results(ctx, results, split=split, name=run.key + ("-tta" if tta else ""), track=track)
