"""Chapter set-up: the one call at the top of every chapter.

``ctx = setup_chapter("03_experts", profile=profile, namespace=globals(), classes=classes)`` checks
the chapter's parameters (an unknown ``-p name`` is an error), applies ``-p section__key`` profile
overrides, validates the profile against its schema, seeds every random generator, picks the device,
makes plotly figures render offline in the book and creates ``results/<profile>/<chapter>/``. The
merged parameters are written as ``parameters.json`` beside the chapter's metrics only when the
chapter succeeds, so every number in the book can be traced back to the run that made it.
"""

from __future__ import annotations

import datetime
import platform
import re
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from o365lib.book.artefacts.resolver import init_distributed
from o365lib.book.config.mapping import ConfigError, to_mapping
from o365lib.book.config.profiles import (
    OVERRIDE_SEPARATOR,
    chapter_parameters,
    load_profile,
    profile_path,
    project_root,
)
from o365lib.book.run.plotly_offline import register_offline_renderer
from o365lib.engine.seeding import seed_everything

#: Chapter names are folder names such as ``01_data_tail`` (or ``train_baseline`` for CLI runs).
CHAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Names a Jupyter kernel defines in every notebook's namespace (never parameters).
KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
#: Top-level profile values a chapter run may override by their plain name (``-p seeds "[0]"``).
TOP_LEVEL_OVERRIDES = frozenset({"device", "seeds"})


@dataclass
class ChapterContext:
    """Everything a chapter needs from its set-up.

    ``cfg`` is the validated profile (``o365lib.book.config.schema.Profile``, overrides applied), ``params``
    the chapter's own parameters, ``overrides`` the profile values overridden with ``section__key``,
    ``results_dir`` the chapter's folder and ``profile_dir`` the profile's (``results/<profile>``),
    where models and predictions shared by chapters live. ``record`` is what ``parameters.json``
    will hold: it is written only when the chapter succeeds (``o365lib.book.run.records``).
    """

    chapter: str
    profile: str
    cfg: Any
    params: dict
    results_dir: Path
    profile_dir: Path
    device: str
    root: Path
    overrides: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """The random seeds every model a comparison rests on is trained with."""
        return list(self.cfg.seeds)

    def path(self, *parts: str) -> Path:
        """A path inside the chapter's results folder."""
        return self.results_dir.joinpath(*parts)

    def shown(self, path: Path) -> str:
        """A path for the page: relative to the project root when inside it, else as it is."""
        path = Path(path)
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def pick_device(requested: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; ``"cuda"`` without a GPU fails."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("profile asks for device 'cuda' but torch sees no GPU; use device: auto or cpu")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    return requested


def _versions() -> dict:
    """Versions of the main packages, recorded with the parameters."""
    import torch
    import torchvision

    import o365lib

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "o365lib": o365lib.__version__,
            "numpy": np.__version__}


def _namespace_parameters(namespace: dict, declared: set[str], *, chapter: str) -> dict:
    """Profile overrides (``section__key``) found in a notebook's namespace; unknown names are errors.

    Papermill injects every ``-p name value`` as a global of the notebook, including names the
    chapter does not declare (it only prints "Passed unknown parameter"). So a typo such as
    ``-p clases 151-300`` is caught here, not silently ignored.
    """
    overrides, unknown = {}, []
    for name, value in namespace.items():
        if name.startswith("_") or name in KERNEL_NAMES or name in declared or isinstance(value, types.ModuleType):
            continue
        if OVERRIDE_SEPARATOR in name or name in TOP_LEVEL_OVERRIDES:
            overrides[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise ConfigError(f"chapter {chapter}", unknown[0],
                          f"unknown parameter{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; this chapter's "
                          f"parameters: {sorted(declared - {'namespace'})}; profile values are set with section__key "
                          "(e.g. -p train__epochs 3)")
    return overrides


def setup_chapter(chapter: str, *, profile: str = "default", namespace: dict | None = None,
                  **params: Any) -> ChapterContext:
    """Prepare a chapter run and return its :class:`ChapterContext`.

    ``chapter`` is the chapter's file stem (``"03_experts"``), ``profile`` a profile name or a YAML
    path, ``params`` the chapter's declared parameters (``None`` means "the chapter file's default").
    ``namespace`` (a chapter passes ``globals()``) is searched for what papermill injected beyond
    the declared parameters: ``section__key`` names override profile values, any other name is an
    error that lists the known ones; the defaults come from the chapter's own parameters cell. Everything is validated before anything is written; the chapter's record
    (``parameters.json``) is written with its metrics, only when it succeeds.
    Side effects: seeds, plotly's default renderer, the results folder.
    """
    if not CHAPTER_NAME.match(str(chapter)):
        raise ValueError(f"chapter name {chapter!r} must be a plain folder name such as '01_data_tail'")
    root = project_root()
    declared = {"profile", "namespace", *params}
    defaults = chapter_parameters(chapter, root=root)
    extra = sorted(set(defaults) - declared)
    if extra:
        raise ConfigError(str(root / "book" / f"{chapter}.py"), extra[0],
                          f"not a parameter of chapter {chapter}; its parameters: {sorted(declared - {'namespace'})}")
    overrides = _namespace_parameters(dict(namespace or {}), declared, chapter=chapter)
    profile_file = profile_path(profile, root=root)
    cfg = load_profile(profile_file, root=root, overrides=overrides)
    given = {k: v for k, v in params.items() if v is not None}
    ctx = ChapterContext(
        chapter=chapter,
        profile=str(cfg.name),
        cfg=cfg,
        params={**defaults, **given},
        profile_dir=Path(cfg.results_dir),
        results_dir=Path(cfg.results_dir) / chapter,
        device=pick_device(str(cfg.device)),
        root=root,
        overrides=overrides,
    )
    ctx.record = {
        "chapter": ctx.chapter, "profile": ctx.profile, "profile_file": str(profile_file),
        "parameters": ctx.params, "overrides": overrides, "device": ctx.device, "config": to_mapping(cfg),
        "versions": _versions(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    seed_everything(int(cfg.seeds[0]))
    register_offline_renderer()
    # tqdm.auto warns on every import in a kernel without ipywidgets; the bars are off in book runs
    warnings.filterwarnings("ignore", message="IProgress not found")
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    init_distributed(ctx.device)
    return ctx
