"""Chapter 7's room for the new losses: budget curves, and what EQLv2 does in its first iterations.

The shared-budget table of chapter 7 gives every remedy chapter 4's fine-tuning budget. Seesaw, EQLv2
and the federated loss start with a *fresh* classifier, which their authors train from the start for a
1x or 2x schedule. So:

- :func:`budget_study`: softmax CE and each fresh-classifier row, fine-tuned from the chapter 2 baseline
  of the same seed with ``epochs`` of uniform sampling (in iterations, at the shared learning rate and
  step shape), for the shared budget and larger ones up to the baseline's own schedule; the shared
  budget's point is the shared-budget table's own model. :func:`crossings` says, per remedy, from which
  budget its paired difference to softmax CE is positive, and whether its interval is above zero.
- :func:`eqlv2_probe`: the fresh EQLv2 fine-tune of one seed, run in segments; after each, every class's
  negative weight (per cascade stage) and the share of each image's top detections taken by classes
  that have not had a positive box yet. The suspected mechanism: such a class has an accumulated
  positive gradient of 0, so its negative weight is ``sigmoid(gamma (0 - mu))`` (about 7e-5), its fresh
  logit is hardly pushed down, and it may fill the per-image detection cap with false positives.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from o365lib.book.artefacts import datasets, models, predictions, resolver
from o365lib.book.artefacts.keys import key_of
from o365lib.book.present.comparisons import interval_text, mean_std, paired_effect
from o365lib.book.present.seed_stats import values
from o365lib.book.studies import beyond, remedies
from o365lib.data import DetectionDataset
from o365lib.data.coco import read_json
from o365lib.engine import predict
from o365lib.engine.seeding import seed_everything
from o365lib.engine.train import train
from o365lib.io import write_json
from o365lib.longtail import build_sampler
from o365lib.modeling.losses.sigmoid import EQLv2ClassLoss


# ------------------------------------------------------------------------------------ budget curve
def curve_rows(ctx) -> list[str]:
    """Softmax CE and the rows whose classifier starts fresh with a new loss (Seesaw, EQLv2, Federated)."""
    fresh = [row for row, (sampler, loss, start) in beyond.trained_rows(ctx).items()
             if loss is not None and sampler == "uniform" and start == "fresh"]
    return [beyond.CONTROL, *fresh]


def curve_budgets(ctx, extra_epochs) -> list[float]:
    """The shared budget (``resampling.epochs``) and the larger ones asked for, in increasing order.

    ``extra_epochs``: numbers, or their list as text (``"[0.6, 2.0]"``, as ``papermill -p`` passes it).
    """
    if isinstance(extra_epochs, str):
        try:
            extra_epochs = ast.literal_eval(extra_epochs)
        except (ValueError, SyntaxError):
            raise ValueError(f"curve_epochs must be a list of epochs such as [0.6, 2.0], got {extra_epochs!r}") from None
    if isinstance(extra_epochs, (int, float)):
        extra_epochs = [extra_epochs]
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) and e > 0 for e in extra_epochs):
        raise ValueError(f"curve_epochs must be positive numbers of epochs, got {extra_epochs!r}")
    shared = float(ctx.cfg.resampling.epochs)
    return sorted({shared, *(float(e) for e in extra_epochs)})


def probe_applies(ctx) -> bool:
    """Whether the profile's chapter 7 has the row the probe reruns (EQLv2 with a fresh classifier)."""
    return "EQLv2" in beyond.trained_rows(ctx)


def budget_study(ctx, extra_epochs) -> dict:
    """``{row: {epochs: [val metrics per seed]}}`` for :func:`curve_rows` at every budget of :func:`curve_budgets`."""
    budgets = curve_budgets(ctx, extra_epochs)
    out = {row: {e: [] for e in budgets} for row in curve_rows(ctx)}
    for seed in ctx.seeds:
        base = models.ensure_baseline(ctx, seed)
        for row in out:
            for epochs in budgets:
                run = beyond.ensure_row(ctx, row, seed=seed, base=base, epochs=epochs)
                out[row][epochs].append(predictions.model_metrics(ctx, run))
    return out


def curve_iterations(ctx, curve: dict) -> dict:
    """Budget (epochs) -> fine-tuning iterations, for the budgets of ``curve``."""
    budgets = {e for points in curve.values() for e in points}
    return {e: remedies.resampling_budget(ctx, epochs=e)["iterations"] for e in sorted(budgets)}


def curve_table(curve: dict, *, iterations: dict | None = None, digits: int = 1) -> pd.DataFrame:
    """Rows: the curve's rows; columns: budgets (epochs, and iterations when given); cells mAP "mean ± std"."""
    def label(epochs):
        return f"{epochs:g} ep" + (f" ({iterations[epochs]} it)" if iterations else "")

    return pd.DataFrame({row: {label(e): mean_std(values(per_seed), digits) for e, per_seed in points.items()}
                         for row, points in curve.items()}).T.rename_axis(None)


def crossings(curve: dict) -> list[dict]:
    """Per remedy: its paired mAP difference to softmax CE at every budget, and the budget from which it stays
    positive (and its interval above zero) at every larger budget; None where it does not."""
    control = curve[beyond.CONTROL]
    out = []
    for row, points in curve.items():
        if row == beyond.CONTROL:
            continue
        effects = {e: paired_effect(values(control[e]), values(points[e]), talk_effect=None) for e in points}
        out.append({"remedy": row, "effects": effects,
                    "first positive": _stays_from(effects, lambda effect: effect.diff_mean > 0),
                    "first interval above zero": _stays_from(effects, lambda effect: effect.ci_low > 0)})
    return out


def _stays_from(effects: dict, holds) -> float | None:
    """The smallest budget from which ``holds`` is true at that budget and at every larger one (None if never)."""
    found = None
    for epochs in sorted(effects, reverse=True):
        if not holds(effects[epochs]):
            break
        found = epochs
    return found


def crossings_table(found: list[dict], *, digits: int = 2) -> pd.DataFrame:
    """The paired difference to softmax CE per budget (with its 95% interval) and the crossing budgets."""
    rows = {}
    for item in found:
        cells = {f"{e:g} ep": f"{effect.diff_mean:+.{digits}f} {interval_text(effect.ci_low, effect.ci_high, digits)}"
                 for e, effect in item["effects"].items()}
        cells["crosses softmax CE at"] = _epochs_text(item["first positive"])
        cells["interval above zero from"] = _epochs_text(item["first interval above zero"])
        rows[item["remedy"]] = cells
    return pd.DataFrame(rows).T.rename_axis(None)


def _epochs_text(epochs) -> str:
    return "not within the curve" if epochs is None else f"{epochs:g} epochs"


def crossing_records(found: list[dict]) -> list[dict]:
    """JSON-ready crossings for the chapter's record."""
    return [{"remedy": item["remedy"], "first positive": item["first positive"],
             "first interval above zero": item["first interval above zero"],
             "effects": {f"{e:g}": effect.as_dict() for e, effect in item["effects"].items()}} for item in found]


# ------------------------------------------------------------------------------------ EQLv2 probe
#: Iterations after which the probe looks (capped at the run's length, which is always included).
PROBE_ITERATIONS = (0, 5, 10, 20, 40, 80)


def eqlv2_probe(ctx, *, seed: int, images: int = 100, at: tuple[int, ...] = PROBE_ITERATIONS) -> list[dict]:
    """The fresh EQLv2 row's fine-tune of ``seed`` (same start, budget, sampler), stopped after each of ``at``.

    Each record: ``iteration``, ``classes seen`` (classes with a positive box so far, in any stage),
    ``neg weight, unseen`` / ``neg weight, seen`` (mean negative weight per class, over the cascade stages),
    ``top-K share, unseen`` (mean over those of ``images`` val images with a detection of the share of their
    detections, at most ``eval.max_dets`` each, whose class is unseen), ``classes unseen`` (the share a
    class-blind detector would give them) and ``neg weights`` (every class's negative weight, label order,
    mean over the stages). The classifier starts fresh from the same draw as the row's model (``seed_everything(seed)``),
    in one process whatever ``train.processes`` says. Cached as one JSON artefact; the probe's own checkpoints stay in
    its folder.
    """
    base = models.ensure_baseline(ctx, seed)
    spec = remedies.resampled_spec(ctx, "uniform", base=base, loss=beyond.loss_spec(ctx, "eqlv2"),
                                   classifier_start="fresh")
    name = "probe-" + spec.pop("name")
    run, model_spec, coco, config = models.plan_model(ctx, name, seed=seed, **spec)
    total = config.iterations
    points = sorted({min(int(i), total) for i in at} | {total})
    key = key_of({"model": model_spec, "at": points, "images": int(images), "max_dets": ctx.cfg.eval.max_dets,
                  "score_threshold": ctx.cfg.eval.score_threshold})
    path = Path(ctx.profile_dir) / "studies" / f"eqlv2-probe-s{seed}-{key}.json"

    def make():
        (run.dir / "last.pt").unlink(missing_ok=True)  # an interrupted probe restarts: its points need every step
        seed_everything(seed)  # as models.ensure_model: the fresh classifier is the table row's own draw
        model = models.build_model(run, load=False)
        models.initialise(model, run, init=base, coco=coco, classifier_start="fresh")
        dataset = DetectionDataset(coco, cache_images=True)
        sampler = build_sampler("uniform", dataset.image_category_ids(), seed=seed,
                                **{k: v for k, v in spec["sampler"].items() if k != "name"})
        val = datasets.load_split(ctx, "val")
        probe_images = DetectionDataset(val, cache_images=False)
        subset = torch.utils.data.Subset(probe_images, range(min(int(images), len(probe_images))))
        records, done, seconds, step_seconds = [], 0, 0.0, 0.0
        for point in points:
            if point > done:
                result = train(model, dataset, out_dir=run.dir, sampler=sampler, device=ctx.device, resume=True,
                               config=replace(config, max_iterations_this_call=point - done, progress=False))
                seconds += result.seconds
                step_seconds += (point - done) * config.batch_size / result.images_per_s if result.images_per_s else 0.0
                done = point
            records.append({"iteration": point, **_probe_state(ctx, model, run, subset)})
        if resolver.is_main_process():  # the segments' training cost, as every model's (timings.json)
            models.write_cost(run, seconds=seconds, iterations=done,
                              images_per_s=done * config.batch_size / step_seconds if step_seconds else 0.0)
        return records

    return resolver.resolve(ctx.profile_dir, kind="metrics", name=path.stem, path=path, make=make,
                            write=lambda value, p: write_json(p, value), read=read_json)


def _probe_state(ctx, model, run: models.ModelRun, subset) -> dict:
    """Negative weights of seen / unseen classes and the unseen classes' share of each image's detections."""
    losses = [m for m in model.modules() if isinstance(m, EQLv2ClassLoss)]
    seen = torch.stack([m.pos_grad > 0 for m in losses]).any(dim=0)  # [K], label order
    neg = torch.stack([m.class_weights()[1][1:] for m in losses]).mean(dim=0)
    model.eval()
    with torch.no_grad():
        results = predict(model, subset, batch_size=ctx.cfg.eval.batch_size, device=ctx.device,
                          max_dets=ctx.cfg.eval.max_dets, score_threshold=ctx.cfg.eval.score_threshold,
                          label_map=run.label_map)
    unseen_ids = {cid for cid, s in zip(run.category_ids, seen.tolist()) if not s}
    per_image: dict = {}
    for r in results:
        hits = per_image.setdefault(r["image_id"], [0, 0])
        hits[0] += r["category_id"] in unseen_ids
        hits[1] += 1
    shares = [unseen / count for unseen, count in per_image.values()]
    return {"classes seen": int(seen.sum()), "classes unseen": float(1 - seen.float().mean()),
            "neg weight, unseen max": float(neg[~seen].max()) if (~seen).any() else None,
            "neg weight, seen min": float(neg[seen].min()) if seen.any() else None,
            "neg weights": [round(float(w), 8) for w in neg],  # per class, label order (mean over stages)
            "neg weight, unseen": _mean(neg[~seen]), "neg weight, seen": _mean(neg[seen]),
            "top-K share, unseen": float(np.mean(shares)) if shares else None,
            "detections per image": float(np.mean([c for _, c in per_image.values()])) if per_image else 0.0}


#: how many times its share of the classes the unseen classes must take of the detections to count as flooding
FLOOD_RATIO = 1.5


def probe_sentence(records: list[dict]) -> str:
    """What the probe found, in numbers from its records: the point where the classes with no positive yet took
    the most of the detections relative to their share of the classes, and the end of the budget."""
    unseen = [r for r in records if r["iteration"] > 0 and r["classes unseen"] > 0]
    last = records[-1]
    if not unseen:
        return f"Every class had a positive box by iteration {records[min(1, len(records) - 1)]['iteration']}."

    def ratio(record):
        return (record["top-K share, unseen"] or 0.0) / record["classes unseen"]

    peak = max(unseen, key=ratio)
    text = (f"At iteration {peak['iteration']}, {peak['classes unseen']:.0%} of the classes had no positive box "
            f"yet. Their mean negative weight was {_weight_text(peak['neg weight, unseen'])}, against "
            f"{_weight_text(peak['neg weight, seen'])} for the classes with one, and they took "
            f"**{peak['top-K share, unseen'] or 0.0:.0%}** of each image's detections, {ratio(peak):.1f} times their "
            f"share of the classes (the largest ratio over the {len(unseen)} measured points with unseen classes). ")
    if last["classes unseen"] > 0:
        text += (f"At the end of the budget ({last['iteration']} iterations) {last['classes unseen']:.0%} of the "
                 f"classes were still unseen and took {last['top-K share, unseen'] or 0.0:.0%} of the detections.")
    else:
        text += f"By the end of the budget ({last['iteration']} iterations) every class had had a positive."
    verdict = (f" The mechanism holds here: unseen classes took at least {FLOOD_RATIO:g} times their share of the cap."
               if ratio(peak) >= FLOOD_RATIO else
               f" The mechanism does not hold here: unseen classes never took {FLOOD_RATIO:g} times their share of "
               "the cap.")
    return text + verdict + " (One run, the first seed.)"


def _weight_text(weight: float | None) -> str:
    return "n/a" if weight is None else f"{weight:.1e}"


def _mean(tensor: torch.Tensor) -> float | None:
    return float(tensor.mean()) if tensor.numel() else None


def probe_table(records: list[dict]) -> pd.DataFrame:
    """The probe's records as a table, one row per iteration."""
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "neg weights"} for r in records]).set_index("iteration")
    return frame.rename(columns={"classes unseen": "share of classes unseen"})

