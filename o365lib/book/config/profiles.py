"""Parameters: the profiles under ``parameters/profiles/`` and each chapter's own parameters.

A *profile* (``parameters/profiles/<name>.yaml``) fixes the scale of the whole book (data set,
model, schedules) and is checked against the one typed schema in ``o365lib.book.config.schema``.
A chapter's parameters and their defaults live in one place, the ``parameters``-tagged first code
cell of ``book/NN_name.py`` (what papermill overrides and a reader sees): :func:`chapter_parameters`
reads them from there. Profile values are overridden by ``section__key`` parameters. This is the
only module that reads parameter files (through :mod:`o365lib.strict_yaml`, which refuses a key
given twice): the library below receives plain keyword arguments.
"""

from __future__ import annotations

import ast
import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from o365lib.book.config.mapping import ConfigError, field_paths, from_mapping
from o365lib.book.config.schema import Profile
from o365lib.strict_yaml import read_yaml_mapping

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
    """A YAML mapping from a file (``{}`` if empty); errors, duplicated keys included, name the file and line."""
    return read_yaml_mapping(path)


OVERRIDE_SEPARATOR = "__"
#: Keys of ``data`` (and ``model``) holding paths, resolved against the project root.
DATA_PATH_KEYS = ("root", "train", "val", "test", "tiny_train", "tiny_val", "tiny_test",
                  "train_images", "val_images", "test_images", "tiny_images")


def resolve_paths(mapping: dict, *, root: Path) -> dict:
    """A copy of a raw profile mapping with its relative data/results/weights paths made absolute."""
    out = deep_merge(mapping, {})

    def absolute(value, *, only_existing=False):
        if not isinstance(value, (str, os.PathLike)) or value in ("",):
            return value
        path = Path(os.path.expanduser(str(value)))
        if path.is_absolute():
            return str(path)
        if only_existing and not (root / path).exists():
            return str(path)
        return str(root / path)

    if "results_dir" in out:
        out["results_dir"] = absolute(out["results_dir"])
    for key in DATA_PATH_KEYS:
        if isinstance(out.get("data"), Mapping) and key in out["data"]:
            out["data"][key] = absolute(out["data"][key])
    for section, key in (("model", "backbone_weights"), ("model", "weights"), ("tricks", "backbone_weights")):
        if isinstance(out.get(section), Mapping) and key in out[section]:
            out[section][key] = absolute(out[section][key], only_existing=True)
    return out


def override_mapping(overrides: Mapping[str, Any], *, source: str = "parameters") -> dict:
    """``{"train__epochs": 3}`` -> ``{"train": {"epochs": 3}}``, checked against the profile schema.

    Papermill parameters must be Python identifiers, so a profile value is overridden with a double
    underscore between section and key (``-p train__epochs 3``). An unknown section or key is a
    :class:`ConfigError` listing the known ones.
    """
    known = field_paths(Profile)
    nested: dict = {}
    for name, value in overrides.items():
        dotted = str(name).replace(OVERRIDE_SEPARATOR, ".")
        if dotted not in known or dotted in ("name", "results_dir"):
            section = dotted.split(".")[0]
            options = sorted(k.replace(".", OVERRIDE_SEPARATOR) for k in known if k.startswith(section + "."))
            raise ConfigError(source, name, f"not a profile value; known in section {section!r}: "
                                            f"{options or sorted({k.split('.')[0] for k in known})}")
        node = nested
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def load_profile(name_or_path: str | os.PathLike, *, root: Path | None = None,
                 overrides: Mapping[str, Any] | None = None):
    """Read, merge ``overrides`` (``{"train__epochs": 3}``) into and validate a profile; returns ``Profile``.

    The profile is given by name (``parameters/profiles/<name>.yaml``) or by path. Relative paths
    inside it are resolved against the project root. Any problem is a ``ConfigError`` naming the file
    and the dotted key, raised before anything runs.
    """
    root = root or project_root()
    path = profile_path(name_or_path, root=root)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    source = str(path)
    if overrides:
        raw = deep_merge(raw, override_mapping(overrides, source=f"{source} (overrides)"))
        source = f"{source} with overrides {dict(overrides)}"
    return from_mapping(Profile, resolve_paths(raw, root=root), source=source)


def chapter_parameters(chapter: str, *, root: Path | None = None) -> dict:
    """A chapter's parameters and defaults: its source's ``parameters`` cell, without ``profile`` (``{}`` if none)."""
    path = (root or project_root()) / "book" / f"{chapter}.py"
    if not path.is_file():
        return {}
    values = parameters_of_source(path.read_text(encoding="utf-8"), source=str(path))
    values.pop("profile", None)
    return values


#: The marker of the parameters cell in a jupytext percent-format chapter source.
PARAMETERS_CELL = re.compile(r'^# %% tags=\["parameters"\]\s*$', re.MULTILINE)


def parameters_of_source(text: str, *, source: str = "chapter") -> dict:
    """The ``name = literal`` assignments of a chapter's ``parameters`` cell (a notebook cell's source, or a
    whole percent-format file, where the cell runs from its marker to the next ``# %%``)."""
    found = PARAMETERS_CELL.search(text)
    if found:
        text = text[found.end():].split("\n# %%", 1)[0]
    values = {}
    for node in ast.parse(text).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"{source}: parameters cell: only 'name = literal' lines allowed, got {ast.unparse(node)!r}")
        if node.targets[0].id in values:
            raise ValueError(f"{source}: parameters cell: {node.targets[0].id} is given twice")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{source}: parameters cell: {node.targets[0].id} is not a plain literal: "
                             f"{ast.unparse(node.value)!r}") from None
    return values


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """A new dict: ``base`` with ``update`` merged in; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
