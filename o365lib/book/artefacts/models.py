"""Detectors as artefacts: planned (named and keyed) without training, then found or trained.

- :func:`plan_model`: the :class:`ModelRun` a specification names, nothing trained;
- :func:`ensure_model`: a detector trained with one random seed, unless the same specification was
  trained before. Its folder ``models/<name>-s<seed>-<key>`` is keyed by the model and training
  settings, the random seed, the *content* of the training set, the initial weights (content hash, or the
  key of the model they come from), the sampler and the classification loss.

A found ``final.pt`` is verified to load before it is reused (the resolver's ``verify``); a truncated
file is an error naming it. Backbone initialisations are in :mod:`.backbones`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from o365lib import data as odata
from o365lib.book.artefacts import datasets, resolver
from o365lib.book.artefacts.backbones import baseline_backbone, existing_file
from o365lib.book.artefacts.keys import content_hash, key_of
from o365lib.data import DetectionDataset
from o365lib.engine import TrainConfig, load_checkpoint
from o365lib.engine.config import OPERATIONAL_FIELDS
from o365lib.engine.local_workers import train_local
from o365lib.engine.seeding import seed_everything
from o365lib.io import write_json
from o365lib.longtail import build_sampler
from o365lib.modeling import build_detector
from o365lib.modeling.build import PRESETS, preset_of
from o365lib.modeling.transfer import (
    init_detector_weights,
    read_weights_file,
    start_new_classifiers,
    transfer_weights,
)
from o365lib.progress import progress_enabled


@dataclass(frozen=True)
class ModelRun:
    """A trained (or to be trained) model in the results folder."""

    name: str
    seed: int
    dir: Path
    category_ids: tuple  # the categories of its classifier, in label order
    detector_kwargs: dict

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def label_map(self):
        return odata.LabelMap(self.category_ids)

    @property
    def checkpoint(self) -> Path:
        return self.dir / "final.pt"

    @property
    def losses(self) -> Path:
        return self.dir / "losses.json"

    @property
    def key(self) -> str:
        return self.dir.name


def detector_kwargs(ctx, *, backbone_weights: Path | None, **overrides) -> dict:
    """Keyword arguments of ``build_detector`` from the profile's model section."""
    m = ctx.cfg.model
    kwargs = {"backbone": m.backbone, "dcn": m.dcn, "fpn_channels": m.fpn_channels, "min_size": m.min_size,
              "max_size": m.max_size, **m.options, **overrides}
    if backbone_weights is not None:
        kwargs["backbone_weights"] = str(backbone_weights)
    return kwargs


# ------------------------------------------------------------------------------ detectors
#: Train-section settings of how training is launched, not of ``TrainConfig`` (``train_local``'s processes).
LAUNCH_FIELDS = ("processes",)


def train_config(ctx, *, seed: int, epochs: float | None = None, iterations: int | None = None,
                 lr: float | None = None, scales: list[int] | None = None):
    """``TrainConfig`` from the profile's train section; a budget, lr or scales may be replaced.

    Every field of the section is a ``TrainConfig`` field of the same name (lists become tuples), so a
    setting added to the schema reaches training, or fails here if ``TrainConfig`` lacks it.
    """
    t = ctx.cfg.train
    if iterations is None and epochs is None:
        epochs = t.epochs
    section = {f.name: getattr(t, f.name) for f in fields(t) if f.name not in LAUNCH_FIELDS}
    section = {name: tuple(value) if isinstance(value, list) else value for name, value in section.items()}
    return TrainConfig(**{
        **section, "epochs": None if iterations is not None else float(epochs), "iterations": iterations,
        "lr": float(lr if lr is not None else t.lr), "scales": tuple(scales if scales is not None else t.scales),
        "seed": int(seed), "progress": progress_enabled()})


def plan_model(ctx, name: str, *, seed: int, split: str = "train", train_set: Path | None = None,
               image_root: Path | None = None, init: ModelRun | Path | None = None, init_prefixes: tuple = (), sampler: dict | None = None,
               backbone_weights: Path | None = None, detector_overrides: dict | None = None,
               budget: dict | None = None, classifier_start: str | None = None):
    """The ModelRun a specification names (nothing is trained), its spec, training data and TrainConfig.

    Arguments as :func:`ensure_model`. The run's folder ``models/<name>-s<seed>-<key>`` is keyed by
    the spec: settings, seed, the *content* of the training set and of the initial weights.
    """
    source = Path(train_set) if train_set is not None else datasets.split_file(ctx, split)
    image_root = Path(image_root) if image_root is not None else datasets.ensure_dataset(ctx).image_roots[split]
    coco = datasets.load_coco_file(source, image_root=image_root, data=ctx.cfg.data)
    if isinstance(init, ModelRun) and backbone_weights is None:  # a fine-tune keeps its start's architecture
        kwargs = {**init.detector_kwargs, **(detector_overrides or {})}
        backbone_weights = kwargs.get("backbone_weights")
    else:
        kwargs = detector_kwargs(ctx, backbone_weights=backbone_weights, **(detector_overrides or {}))
    config = train_config(ctx, seed=seed, **(budget or {}))
    init_key = init.key if isinstance(init, ModelRun) else _file_key(init) if init is not None else None
    spec = {
        # the backbone weights by content (below), not by path: a moved checkout keeps its models
        "name": name, "seed": int(seed), "model": {k: v for k, v in kwargs.items() if k != "backbone_weights"},
        # the preset's values (anchors, levels, RoI mapping...) are part of the model: a change retrains
        "preset": key_of(PRESETS[preset_of(kwargs["backbone"], kwargs.get("preset"))]),
        "backbone_weights": _file_key(backbone_weights) if backbone_weights else None,
        "num_classes": coco.label_map.num_classes,
        "train": {k: v for k, v in asdict(config).items() if k not in OPERATIONAL_FIELDS},
        "data": content_hash(source), "sampler": sampler, "init": init_key, "init_prefixes": list(init_prefixes),
    }
    if classifier_start is not None:
        spec["classifier_start"] = classifier_start
    spec["weights_drawn"] = "from the random seed"  # since 2026-12-05; before, from the process's random state
    if ctx.cfg.train.processes > 1:  # DDP over local processes: another sharding and per-process batch norm
        spec["processes"] = ctx.cfg.train.processes
    run = ModelRun(name=name, seed=int(seed), dir=Path(ctx.profile_dir) / "models" / f"{name}-s{seed}-{key_of(spec)}",
                   category_ids=tuple(coco.label_map.category_ids), detector_kwargs=kwargs)
    return run, spec, coco, config


def _file_key(path) -> str:
    """A weights file's content hash; while planning, a stand-in for one not made yet (its models are missing too)."""
    if resolver.is_planning() and not Path(path).exists():
        return "unmade-" + key_of(str(path))
    return content_hash(path)


def ensure_model(ctx, name: str, *, seed: int, init: ModelRun | Path | None = None, init_prefixes: tuple = (),
                 sampler: dict | None = None, classifier_start: str | None = None, **plan) -> ModelRun:
    """Train a model unless the same specification was trained before; return its ModelRun.

    ``train_set`` is a COCO JSON (e.g. an expert subset) used instead of ``split``, its images under
    ``image_root`` (default: the split's image folder); ``init`` a ModelRun
    or weights file to start from (matching tensors are copied, classifier rows mapped by category id;
    ``init_prefixes`` limits the copy, e.g. to the backbone); ``sampler`` a dict ``{"name": ..., **options}``
    for ``o365lib.longtail.build_sampler``; ``budget`` replaces the train section's epochs / iterations /
    lr / scales (``train_config`` arguments); ``classifier_start`` (``"fresh"`` or ``"converted"``), when the
    ``detector_overrides`` change the classification loss of an ``init`` ModelRun, whether the new classifier
    starts fresh or from the start's softmax classifier (``o365lib.modeling.transfer.start_new_classifiers``).
    Every process trains (DDP under torchrun); rank 0 writes.
    """

    run, spec, coco, config = plan_model(ctx, name, seed=seed, init=init, init_prefixes=init_prefixes,
                                         sampler=sampler, classifier_start=classifier_start, **plan)
    return resolver.resolve(
        ctx.profile_dir, kind="model", name=f"{name}-s{seed}", path=run.checkpoint, every_rank_makes=True,
        make=lambda: _train_model(ctx, run, spec=spec, coco=coco, config=config, init=init,
                                  init_prefixes=init_prefixes, sampler=sampler, classifier_start=classifier_start),
        verify=lambda _: verify_checkpoint(run), read=lambda _: run, planned=run)


def _train_model(ctx, run: ModelRun, *, spec: dict, coco, config, init, init_prefixes: tuple, sampler: dict | None,
                 classifier_start: str | None) -> None:
    """Train ``run`` (every process; rank 0 writes ``spec.json``, ``init.json``, the checkpoint, ``cost.json``)."""
    if resolver.is_main_process():
        write_json(run.dir / "spec.json", spec)
    seed_everything(run.seed)  # the new layers' random draw depends on the random seed only, not on what ran before
    model = build_model(run, load=False)
    if init is not None:
        report = initialise(model, run, init=init, coco=coco, init_prefixes=init_prefixes,
                            classifier_start=classifier_start)
        if resolver.is_main_process():
            write_json(run.dir / "init.json", report)
    dataset = DetectionDataset(coco, cache_images=True)
    sampler_obj = None
    if sampler:
        options = {k: v for k, v in sampler.items() if k != "name"}
        sampler_obj = build_sampler(sampler["name"], dataset.image_category_ids(), seed=run.seed, **options)
    result = train_local(model, dataset, config=config, out_dir=run.dir, sampler=sampler_obj, device=ctx.device,
                         processes=ctx.cfg.train.processes)
    if resolver.is_main_process():  # the training cost of this call (a resumed run: its last part)
        write_cost(run, seconds=result.seconds, images_per_s=result.images_per_s, iterations=result.iterations)


def write_cost(run: ModelRun, *, seconds: float, images_per_s: float, iterations: int) -> None:
    """``cost.json`` beside the checkpoint: what the runner's ``timings.json`` reports for a trained model."""
    write_json(run.dir / "cost.json", {"seconds": seconds, "images_per_s": images_per_s, "iterations": iterations})


def initialise(model, run: ModelRun, *, init, coco, init_prefixes: tuple = (), classifier_start: str | None = None) -> dict:
    """Copy the start ``init`` (a ModelRun or a detector file) into ``model`` of ``run``; the transfer report."""
    if not isinstance(init, ModelRun):  # a detector file (mmdet, ours or torchvision): rows of same-named classes
        categories = sorted(coco.dataset["categories"], key=lambda c: c["id"])
        return init_detector_weights(model, Path(init), target_categories=categories)
    # our own model: tensors copied, classifier rows mapped by category id
    source = init.checkpoint
    start_loss = init.detector_kwargs.get("class_loss", "softmax")
    if run.detector_kwargs.get("class_loss", "softmax") != start_loss:
        # another classification loss (Seesaw, EQLv2, Federated): everything else (backbone, RPN, box heads,
        # regressors) is the start's; the classifier starts fresh, as in the papers, or
        # ``classifier_start="converted"`` from the start's softmax rows where the loss has a counterpart
        source = start_new_classifiers(model, read_weights_file(init.checkpoint)[0],
                                       convert=classifier_start == "converted" and start_loss == "softmax")
    return transfer_weights(model, source, source_label_map=init.label_map, target_label_map=coco.label_map,
                            prefixes=tuple(init_prefixes))


def verify_checkpoint(run: ModelRun) -> None:
    """Raise ``ValueError`` naming the file when a found ``final.pt`` does not load (e.g. truncated)."""
    read_weights_file(run.checkpoint)


def build_model(run: ModelRun, *, device: str = "cpu", load: bool = True):
    """The detector of a ModelRun (its final weights loaded unless ``load=False``)."""
    model = build_detector(run.num_classes, **run.detector_kwargs)
    if load:
        load_checkpoint(run.checkpoint, model)
    return model.to(device)


def ensure_baseline(ctx, seed: int) -> ModelRun:
    """The chapter 02 baseline: the COCO recipe applied straight to all classes, one random seed.

    With ``model.weights`` (e.g. an mmdet COCO checkpoint) the detector starts from those weights.
    """
    weights = ctx.cfg.model.weights
    init = existing_file(weights, key="model.weights", ctx=ctx) if weights else None
    return ensure_model(ctx, "baseline", seed=seed, backbone_weights=baseline_backbone(ctx), init=init)


def ensure_baselines(ctx) -> list[ModelRun]:
    """The baseline for every seed of the profile."""
    return [ensure_baseline(ctx, seed) for seed in ctx.seeds]
