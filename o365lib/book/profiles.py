"""Parameter profiles: load, validate and merge the YAML files under ``parameters/``.

A *profile* (``parameters/profiles/<name>.yaml``) fixes the scale of the whole book (data set,
model, schedules); a *chapter parameters file* (``parameters/chapters/NN_name.yaml``) holds the
defaults of one chapter's papermill parameters. A chapter's configuration is the deep merge
profile <- chapter file <- papermill/keyword overrides. This is the only place (with
``o365lib.book.chapter``) that reads YAML: the library below receives plain keyword arguments.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: Sections every profile must define, and the keys each must hold (more keys are allowed).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "seed", "device", "results_dir", "data", "model", "train", "eval",
         "experts", "resampling", "tricks", "tiny"),
    "data": ("source", "synthetic_profile", "root", "train", "val", "test", "tiny_train", "tiny_val",
             "tiny_test", "train_images", "val_images", "test_images", "tiny_images", "box_policy",
             "check_images"),
    "model": ("backbone", "dcn", "fpn_channels", "min_size", "max_size", "backbone_weights", "weights"),
    "train": ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_iters", "lr_steps",
              "scales", "flip", "clip_grad", "amp", "checkpoint_every", "num_workers"),
    "eval": ("batch_size", "max_dets", "score_threshold", "ranges"),
    "experts": ("lr", "other_classes", "strategy"),  # plus a budget: epochs or iterations
    "resampling": ("epochs", "lr", "samplers", "repeat_threshold", "head_cap"),
    "tricks": ("backbone_weights", "pretrain_crops_per_class", "pretrain_crop_size", "pretrain_epochs",
               "pretrain_lr", "ms_scales", "tta_scales", "tta_flip", "soft_nms_sigma", "ensemble_members"),
    "tiny": ("epochs", "lr"),
}
DEVICES = ("auto", "cpu", "cuda")
DATA_SOURCES = ("synthetic", "coco")

#: Environment variable naming the project root (the folder holding ``parameters/``).
ROOT_ENV = "O365BOOK_ROOT"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project root: ``$O365BOOK_ROOT``, else the first folder upwards holding ``parameters/profiles``.

    Searched from ``start`` (default: the working directory), then from the package's own
    location (an editable install lives inside the project). Chapters resolve every relative
    path against this root, so a notebook gives the same results whether it is run from the
    project root (papermill, the runner) or from ``book/`` (Jupyter).
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    starts = [Path(start or os.getcwd()).resolve(), Path(__file__).resolve().parent]
    for first in starts:
        for folder in (first, *first.parents):
            if (folder / "parameters" / "profiles").is_dir():
                return folder
    raise FileNotFoundError(
        f"no folder holding parameters/profiles above {starts[0]} or {starts[1]}; "
        f"run from the o365book checkout or set {ROOT_ENV}")


def profile_path(name_or_path: str | os.PathLike, *, root: Path | None = None) -> Path:
    """The YAML file of a profile given by name (``"smoke"``) or by path (``"my.yaml"``)."""
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith((".yaml", ".yml")) or candidate.is_file():
        if not candidate.is_absolute() and not candidate.is_file():
            candidate = (root or project_root()) / candidate
        if not candidate.is_file():
            raise FileNotFoundError(f"profile file {text!r} does not exist")
        return candidate
    folder = (root or project_root()) / "parameters" / "profiles"
    path = folder / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile {text!r}: no {path}; known profiles: {known}")
    return path


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from a file (an empty file gives ``{}``); errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")  # noqa: TRY004
    return data


def validate_profile(profile: Mapping[str, Any], *, source: str = "<profile>") -> None:
    """Raise ``ValueError`` naming the file and the key when a profile lacks a key or has a bad value."""
    for section, keys in REQUIRED_KEYS.items():
        where = profile if not section else profile.get(section)
        label = section or "top level"
        if not isinstance(where, Mapping):
            raise ValueError(f"{source}: section {section!r} must be a mapping, got {where!r}")  # noqa: TRY004
        missing = [k for k in keys if k not in where]
        if missing:
            raise ValueError(f"{source}: {label} lacks key(s) {missing}")
    if profile["device"] not in DEVICES:
        raise ValueError(f"{source}: device must be one of {DEVICES}, got {profile['device']!r}")
    if profile["data"]["source"] not in DATA_SOURCES:
        raise ValueError(f"{source}: data.source must be one of {DATA_SOURCES}, "
                         f"got {profile['data']['source']!r}")
    steps = profile["train"]["lr_steps"]
    if not isinstance(steps, list) or any(not 0 < float(s) <= 1 for s in steps):
        raise ValueError(f"{source}: train.lr_steps must be a list of fractions in (0, 1], got {steps!r}")
    for key in ("batch_size", "checkpoint_every"):
        value = profile["train"][key]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: train.{key} must be an integer >= 1, got {value!r}")
    if not isinstance(profile["eval"]["ranges"], list):
        raise ValueError(f"{source}: eval.ranges must be a list of class-rank ranges")  # noqa: TRY004


def load_profile(name_or_path: str | os.PathLike, *, root: Path | None = None) -> dict:
    """Read and validate a profile by name (``parameters/profiles/<name>.yaml``) or by path.

    Returns a fresh dict (safe to modify). ``name`` defaults to the file's stem when absent.
    """
    path = profile_path(name_or_path, root=root)
    profile = read_yaml(path)
    profile.setdefault("name", path.stem)
    validate_profile(profile, source=str(path))
    return profile


def chapter_parameters(chapter: str, *, root: Path | None = None) -> dict:
    """The chapter's parameter defaults from ``parameters/chapters/<chapter>.yaml`` (``{}`` if none)."""
    path = (root or project_root()) / "parameters" / "chapters" / f"{chapter}.yaml"
    return read_yaml(path) if path.is_file() else {}


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """A new dict: ``base`` with ``update`` merged in; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def nest_dotted(params: Mapping[str, Any], *, separator: str = "__") -> dict:
    """Turn flat override names into nested ones: ``{"train__epochs": 3}`` -> ``{"train": {"epochs": 3}}``.

    Papermill parameters must be Python identifiers, so a chapter that exposes a profile value
    as a parameter names it with a double underscore.
    """
    nested: dict = {}
    for key, value in params.items():
        parts = str(key).split(separator)
        if any(not p for p in parts):
            raise ValueError(f"bad parameter name {key!r}: empty part around {separator!r}")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"parameter {key!r} conflicts with a plain parameter {part!r}")  # noqa: TRY004
        node[parts[-1]] = value
    return nested


def merge_parameters(profile: Mapping[str, Any], chapter_params: Mapping[str, Any] | None = None,
                     overrides: Mapping[str, Any] | None = None) -> dict:
    """Deep merge: profile <- chapter parameters file <- overrides (papermill/keyword parameters).

    Names with ``__`` address nested keys (``train__epochs``). ``None`` values in ``overrides``
    mean "not given" and keep the earlier value, so a parameters cell can hold ``epochs = None``
    to fall back on the profile.
    """
    merged = deep_merge(profile, nest_dotted(chapter_params or {}))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return deep_merge(merged, nest_dotted(given))
