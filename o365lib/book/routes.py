"""The models each chapter trains, as named routes: ``train --what`` and ``plan`` both walk them.

:data:`TRAIN_COMMANDS` maps a ``--what`` name to the ``ensure_*`` step that trains (or finds) it, for
every random seed of the profile (or ``--seed``); under ``torchrun`` every rank trains (DDP) and rank 0
writes. :data:`CHAPTER_MODELS` lists, per chapter, the steps its studies call, so that
``python -m o365lib.book plan`` can name every artefact before anything trains.
"""

from __future__ import annotations

from collections.abc import Callable

from o365lib.book.artefacts import backbones, coco_standin, models
from o365lib.book.studies import accuracy_tricks, beyond, loss_budget, remedies


def _seeds(ctx, seed: int | None) -> list[int]:
    return [seed] if seed is not None else ctx.seeds


def _need(value, what: str, option: str):
    if not value:
        raise SystemExit(f"train --what {what} needs --{option}")
    return value


def _experts(ctx, *, classes, seed=None):
    return [remedies.ensure_expert(ctx, _need(classes, "expert", "classes"), seed=s, base=models.ensure_baseline(ctx, s))
            for s in _seeds(ctx, seed)]


def _resampled(ctx, *, sampler, seed=None):
    return [remedies.ensure_resampled(ctx, _need(sampler, "resampled", "sampler"), seed=s,
                                      base=models.ensure_baseline(ctx, s)) for s in _seeds(ctx, seed)]


def _beyond_rows(ctx, *, row, seed=None, epochs=None):
    rows = list(beyond.trained_rows(ctx)) if _need(row, "beyond", "row") == "all" else [row]
    unknown = sorted(set(rows) - set(beyond.trained_rows(ctx)))
    if unknown:
        raise SystemExit(f"--row {unknown[0]!r} is not a chapter 7 row of this profile; known: "
                         f"{sorted(beyond.trained_rows(ctx))} (or all)")
    return [beyond.ensure_row(ctx, r, seed=s, base=models.ensure_baseline(ctx, s), epochs=epochs)
            for s in _seeds(ctx, seed) for r in rows]


#: ``--what`` name -> (description, function(ctx, **options) -> the runs); options: seed, classes, sampler, init, row,
#: epochs.
TRAIN_COMMANDS: dict[str, tuple[str, Callable]] = {
    "backbone": ("the baseline's pretrained backbone (generated classes disjoint from the detection classes)",
                 lambda ctx, **o: [backbones.baseline_backbone(ctx)]),
    "baseline": ("the chapter 2 baseline, every seed (or --seed)",
                 lambda ctx, seed=None, **o: [models.ensure_baseline(ctx, s) for s in _seeds(ctx, seed)]),
    "expert": ("an expert fine-tuned on --classes (e.g. 301-365) from the baseline",
               lambda ctx, seed=None, classes=None, **o: _experts(ctx, classes=classes, seed=seed)),
    "resampled": ("the baseline fine-tuned with --sampler (uniform, repeat_factor, class_aware, head_downsample)",
                  lambda ctx, seed=None, sampler=None, **o: _resampled(ctx, sampler=sampler, seed=seed)),
    "pretrained": ("the baseline recipe from the better pretrained backbone",
                   lambda ctx, seed=None, **o: [accuracy_tricks.ensure_pretrained(ctx, s) for s in _seeds(ctx, seed)]),
    "multiscale": ("the pretrained recipe with multi-scale training",
                   lambda ctx, seed=None, **o: [accuracy_tricks.ensure_multiscale(ctx, s) for s in _seeds(ctx, seed)]),
    "coco-standin": ("the stand-in COCO detector (synthetic profiles: generated classes disjoint from the 365)",
                     lambda ctx, **o: [coco_standin.ensure_standin(ctx)]),
    "tiny": ("a tiny-track model, --init coco, full or backbone",
             lambda ctx, seed=None, init=None, **o: [accuracy_tricks.ensure_tiny(ctx, seed=s, init=init or "full")
                                                     for s in _seeds(ctx, seed)]),
    "beyond": ("a chapter 7 model: --row NAME (e.g. Seesaw, 'EQLv2 (converted)') or all; --epochs: a curve budget",
               lambda ctx, seed=None, row=None, epochs=None, **o: _beyond_rows(ctx, row=row, seed=seed, epochs=epochs)),
}


def _chapter_03(ctx):
    first, second = remedies.expert_pair(ctx, ctx.params["classes"], ctx.params["other_classes"])
    return [*_experts(ctx, classes=first), *_experts(ctx, classes=second)]


def _chapter_05(ctx):
    return [accuracy_tricks.better_backbone(ctx), *TRAIN_COMMANDS["baseline"][1](ctx),
            *TRAIN_COMMANDS["pretrained"][1](ctx), *TRAIN_COMMANDS["multiscale"][1](ctx)]


def _chapter_06(ctx):
    first = accuracy_tricks.tiny_baseline_start(ctx)
    starts = [first, *(["backbone"] if ctx.params.get("backbone_only") and first != "backbone" else [])]
    arms = [*((start, False) for start in starts), ("full", False), ("full", True)]
    return [accuracy_tricks.ensure_tiny(ctx, seed=s, init=init, multiscale=ms) for s in ctx.seeds for init, ms in arms]


def _chapter_07(ctx):
    curve = [beyond.ensure_row(ctx, row, seed=s, base=models.ensure_baseline(ctx, s), epochs=e)
             for s in ctx.seeds for row in loss_budget.curve_rows(ctx)
             for e in loss_budget.curve_budgets(ctx, ctx.params.get("curve_epochs") or [])]
    return [*_beyond_rows(ctx, row="all"), *(run for spec in remedies.TALK_RANGES for run in _experts(ctx, classes=spec)),
            *curve, *([loss_budget.eqlv2_probe(ctx, seed=ctx.seeds[0])] if loss_budget.probe_applies(ctx) else [])]


#: Chapter -> function(ctx) calling the steps that train (or find) every model the chapter reads.
CHAPTER_MODELS: dict[str, Callable] = {
    "02_baseline": lambda ctx: [backbones.baseline_backbone(ctx), *models.ensure_baselines(ctx)],
    "03_experts": _chapter_03,
    "04_resampling": lambda ctx: [run for name in ctx.cfg.resampling.samplers for run in _resampled(ctx, sampler=name)],
    "05_tricks": _chapter_05,
    "06_tiny_track": _chapter_06,
    "07_beyond": _chapter_07,
}
