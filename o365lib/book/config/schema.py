"""The one typed schema of a profile: one frozen dataclass per section of ``parameters/profiles/*.yaml``.

``Profile`` is built by :func:`o365lib.book.config.mapping.from_mapping`, so a profile that loads is valid:
unknown keys, missing keys, wrong types and out-of-range values fail before anything runs, with the
file and the dotted key in the message. Library code receives these values as explicit keyword
arguments from ``o365lib.book``; no other module reads YAML.

``tests/book/test_book_profile_schema.py`` fails when a field of this schema is read by nothing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Literal

from o365lib.book.config.mapping import ConfigError, at_least, positive

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class DataSection:
    """Where the data comes from: generated (``synthetic``) or the user's COCO / Objects365 files."""

    source: Literal["synthetic", "coco"]
    root: str
    synthetic_profile: str | None = None
    generator_seed: int = at_least(0, default=0)
    train: str | None = None
    val: str | None = None
    test: str | None = None
    tiny_train: str | None = None
    tiny_val: str | None = None
    tiny_test: str | None = None
    train_images: str | None = None
    val_images: str | None = None
    test_images: str | None = None
    tiny_images: str | None = None
    box_policy: Literal["clip", "reject", "drop"] = "clip"
    check_images: Literal["quick", "full", "lazy", "off"] = "quick"
    duplicates: Literal["keep", "drop"] = "keep"

    def validate(self, source: str) -> None:
        if self.source == "synthetic" and not self.synthetic_profile:
            raise ConfigError(source, "data.synthetic_profile", "required when data.source is 'synthetic'")
        if self.source == "coco":
            for split in ("train", "val"):
                if not getattr(self, split):
                    raise ConfigError(source, f"data.{split}", "a COCO JSON file is required with data.source 'coco'")


@dataclass(frozen=True)
class PretrainSection:
    """Backbone pretraining on generated crops of classes disjoint from the detection classes."""

    crops_per_class: int = at_least(1)
    crop_size: int = at_least(8)
    epochs: int = at_least(1)
    lr: float = positive()


@dataclass(frozen=True)
class CocoStandinSection:
    """The synthetic profiles' stand-in for a COCO-pretrained detector (``o365lib.book.artefacts.coco_standin``):
    the profile's detector trained for ``epochs`` at ``lr`` on a generated set of ``classes`` classes disjoint
    from the detection classes, ``most`` to ``fewest`` training instances per class."""

    classes: int = at_least(1, default=80)
    most: int = at_least(1, default=500)
    fewest: int = at_least(1, default=50)
    epochs: float = positive(default=4.0)
    lr: float = positive(default=0.04)

    def validate(self, source: str) -> None:
        from o365lib.data.synthetic_coco import CocoStandinSpec  # owns the limits of the generated set

        try:
            CocoStandinSpec(num_classes=self.classes, most=self.most, fewest=self.fewest)
        except ValueError as error:
            raise ConfigError(source, "model.coco_standin", str(error)) from None


@dataclass(frozen=True)
class ModelSection:
    """``build_detector`` arguments. ``options`` passes further keyword arguments of ``build_detector``."""

    backbone: str
    fpn_channels: int = at_least(1)
    min_size: int = at_least(16)
    max_size: int = at_least(16)
    dcn: bool = False
    pretrain: PretrainSection | None = None
    backbone_weights: str | None = None
    weights: str | None = None
    #: the tiny track's COCO start when ``weights`` is null (synthetic data only; null: the backbone alone)
    coco_standin: CocoStandinSection | None = None
    options: dict = field(default_factory=dict)

    def validate(self, source: str) -> None:
        from o365lib.modeling import BACKBONES, build_detector

        if self.backbone not in BACKBONES:
            raise ConfigError(source, "model.backbone", f"must be one of {list(BACKBONES)}, got {self.backbone!r}")
        known = set(inspect.signature(build_detector).parameters) - {
            "num_classes", "backbone", "dcn", "fpn_channels", "min_size", "max_size", "backbone_weights", "weights"}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise ConfigError(source, f"model.options.{unknown[0]}",
                              f"not a build_detector argument; known: {sorted(known)}")


def _samplers() -> tuple[str, ...]:
    from o365lib.longtail import SAMPLERS  # owned by the sampler module; imported late (torch)

    return SAMPLERS


@dataclass(frozen=True)
class TrainSection:
    """The baseline's schedule (SGD, warm-up, step drops); ``lr_steps`` are fractions of the run (1.0 = the end)."""

    epochs: float = positive()
    batch_size: int = at_least(1)
    lr: float = positive()
    momentum: float = at_least(0.0)
    weight_decay: float = at_least(0.0)
    warmup_iters: int = at_least(0)
    lr_steps: list[float] = field(default_factory=list, metadata={"gt": 0, "max": 1.0})
    scales: list[int] = field(default_factory=list, metadata={"min": 16})
    flip: bool = True
    clip_grad: float | None = None
    amp: bool | str = False
    channels_last: bool = False
    checkpoint_every: int = at_least(1, default=500)
    num_workers: int = at_least(0, default=0)
    # local CPU training processes (DDP over gloo, one thread each; ``o365lib.engine.train_local``);
    # batch_size is per process, so the global batch is batch_size * processes. 1: one process.
    processes: int = at_least(1, default=1)

    def validate(self, source: str) -> None:
        _check_amp(source, "train.amp", self.amp)


def _check_amp(source: str, where: str, amp) -> None:
    from o365lib.engine.config import AMP_MODES  # owned by the training configuration

    if not any(amp is mode or (isinstance(mode, str) and amp == mode) for mode in AMP_MODES):
        raise ConfigError(source, where, f"must be one of {list(AMP_MODES)}, got {amp!r}")


@dataclass(frozen=True)
class EvalSection:
    batch_size: int = at_least(1)
    max_dets: int = at_least(1)
    score_threshold: float = at_least(0.0)
    ranges: list[str] = field(default_factory=lambda: ["1-150", "151-300", "301-365"], metadata={"nonempty": True})
    fixed_ap_max_dets: int = at_least(1, default=300)
    # autocast of every prediction, as train.amp means it (bf16 on a CPU only where it is native)
    amp: bool | str = False

    def validate(self, source: str) -> None:
        _check_amp(source, "eval.amp", self.amp)


@dataclass(frozen=True)
class ExpertsSection:
    """Expert fine-tuning: a budget in ``iterations`` or ``epochs`` (exactly one), learning rate, merging."""

    lr: float = positive()
    other_classes: Literal["background", "keep"] = "background"
    strategy: Literal["replace", "fuse"] = "replace"
    iterations: int | None = None
    epochs: float | None = None

    def validate(self, source: str) -> None:
        if (self.iterations is None) == (self.epochs is None):
            raise ConfigError(source, "experts.iterations", "set exactly one of experts.iterations / experts.epochs")
        budget = self.iterations if self.iterations is not None else self.epochs
        if budget <= 0:
            raise ConfigError(source, "experts.iterations" if self.iterations is not None else "experts.epochs",
                              f"must be > 0, got {budget!r}")


@dataclass(frozen=True)
class ResamplingSection:
    """Fine-tuning budget (epochs of uniform sampling, in iterations, the same for every sampler)."""

    epochs: float = positive()
    lr: float = positive()
    repeat_threshold: float = positive()
    head_cap: int = at_least(1)
    samplers: list[str] = field(default_factory=lambda: list(_samplers()), metadata={"nonempty": True})

    def validate(self, source: str) -> None:
        SAMPLERS = _samplers()
        bad = [s for s in self.samplers if s not in SAMPLERS]
        if bad:
            raise ConfigError(source, "resampling.samplers", f"unknown sampler(s) {bad}; known: {list(SAMPLERS)}")


@dataclass(frozen=True)
class TricksSection:
    backbone_weights: str | None
    pretrain: PretrainSection | None
    ms_scales: list[int] = field(default_factory=list, metadata={"min": 16, "nonempty": True})
    tta_scales: list[int] = field(default_factory=list, metadata={"min": 16, "nonempty": True})
    tta_flip: bool = True
    soft_nms_sigma: float = positive(default=0.5)
    ensemble_members: int = at_least(1, default=2)


@dataclass(frozen=True)
class TinySection:
    epochs: float = positive()
    lr: float = positive()


@dataclass(frozen=True)
class RemediesSection:
    """Chapter 7: classification losses (by name) and post-hoc calibration, fine-tuned like chapter 4."""

    losses: list[str] = field(default_factory=lambda: ["seesaw", "eqlv2", "federated"])
    norcal_gamma: float = at_least(0.0, default=1.0)
    #: what NorCal divides each class's score by: its training ``images`` (as the authors' code does with
    #: LVIS ``image_count``) or its training ``instances``
    norcal_counts: Literal["images", "instances"] = "images"
    #: how a new loss's classifier starts, one row per start: ``fresh`` (initialised as in the papers) and
    #: ``converted`` (from the baseline's softmax rows, log-odds against background; only for losses with a
    #: linear counterpart, EQLv2 and Federated; Seesaw's cosine classifier always starts fresh)
    classifier_starts: list[Literal["fresh", "converted"]] = field(default_factory=lambda: ["fresh", "converted"])


@dataclass(frozen=True)
class Profile:
    """A whole profile. ``seeds``: the random seeds every model a comparison rests on is trained with."""

    name: str
    device: Device
    results_dir: str
    seeds: list[int] = field(metadata={"min": 0, "nonempty": True})
    data: DataSection
    model: ModelSection
    train: TrainSection
    eval: EvalSection
    experts: ExpertsSection
    resampling: ResamplingSection
    tricks: TricksSection
    tiny: TinySection
    remedies: RemediesSection = field(default_factory=RemediesSection)

    def validate(self, source: str) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(source, "seeds", f"must be distinct, got {self.seeds}")
        if self.model.coco_standin is not None and self.data.source != "synthetic":
            raise ConfigError(source, "model.coco_standin", "a generated stand-in needs data.source 'synthetic'; "
                                                            "with real data give a COCO detector in model.weights")
