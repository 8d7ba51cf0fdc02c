"""Chapter set-up: the one call at the top of every chapter.

``ctx = setup_chapter("03_experts", profile=profile, classes=classes)`` merges the profile, the
chapter's parameter file and the papermill parameters, seeds every random generator, picks the
device, makes plotly figures render offline in the book, creates
``results/<profile>/<chapter>/`` and writes the merged parameters there as ``parameters.json``
so every number in the book can be traced back to the run that made it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from o365lib.book.plotly_offline import register_offline_renderer
from o365lib.book.profiles import (
    chapter_parameters,
    deep_merge,
    load_profile,
    merge_parameters,
    profile_path,
    project_root,
)

#: Chapter names are folder names such as ``01_data_tail`` (or ``train_baseline`` for CLI runs).
CHAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Keys of ``data`` (and the top level) holding paths that are resolved against the project root.
DATA_PATH_KEYS = ("root", "train", "val", "test", "tiny_train", "tiny_val", "tiny_test",
                  "train_images", "val_images", "test_images", "tiny_images")


@dataclass
class ChapterContext:
    """Everything a chapter needs from its set-up.

    ``cfg`` is the merged configuration (profile <- chapter file <- parameters), ``params`` the
    chapter-level parameters alone, ``results_dir`` the chapter's folder and ``profile_dir`` the
    profile's (``results/<profile>``) where models and predictions shared by chapters live.
    """

    chapter: str
    profile: str
    cfg: dict
    params: dict
    results_dir: Path
    profile_dir: Path
    device: str
    root: Path
    parameters_file: Path = field(default=None)

    def path(self, *parts: str) -> Path:
        """A path inside the chapter's results folder."""
        return self.results_dir.joinpath(*parts)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a chapter's numbers repeat run to run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


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


def resolve_paths(cfg: dict, *, root: Path) -> dict:
    """A copy of ``cfg`` with its relative data and results paths made absolute against ``root``."""
    out = deep_merge(cfg, {})

    def absolute(value):
        if value in (None, "") or not isinstance(value, (str, os.PathLike)):
            return value
        path = Path(os.path.expanduser(str(value)))
        return str(path if path.is_absolute() else (root / path))

    out["results_dir"] = absolute(out["results_dir"])
    for key in DATA_PATH_KEYS:
        if key in out.get("data", {}):
            out["data"][key] = absolute(out["data"][key])
    for key in ("backbone_weights", "weights"):
        value = out.get("model", {}).get(key)
        if isinstance(value, str) and (root / value).exists():
            out["model"][key] = str(root / value)
    return out


def _versions() -> dict:
    """Versions of the main packages, recorded with the parameters."""
    import torch
    import torchvision

    import o365lib

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "o365lib": o365lib.__version__,
            "numpy": np.__version__}


def write_parameters(ctx: ChapterContext, *, profile_file: Path) -> Path:
    """Write ``parameters.json`` (merged configuration, chapter parameters, versions) for ``ctx``."""
    record = {
        "chapter": ctx.chapter,
        "profile": ctx.profile,
        "profile_file": str(profile_file),
        "parameters": ctx.params,
        "device": ctx.device,
        "config": ctx.cfg,
        "versions": _versions(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = ctx.results_dir / "parameters.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf8")
    os.replace(tmp, path)
    return path


def setup_chapter(chapter: str, *, profile: str = "default", **params: Any) -> ChapterContext:
    """Prepare a chapter run and return its :class:`ChapterContext`.

    ``chapter`` is the chapter's file stem (``"03_experts"``), ``profile`` a profile name or a
    YAML path, ``params`` the chapter's papermill parameters (``None`` means "use the default").
    Side effects, all wanted: seeds, plotly's default renderer, the results folder and its
    ``parameters.json`` (written by rank 0 only under torchrun).
    """
    if not CHAPTER_NAME.match(str(chapter)):
        raise ValueError(f"chapter name {chapter!r} must be a plain folder name such as '01_data_tail'")
    root = project_root()
    profile_file = profile_path(profile, root=root)
    base = load_profile(profile_file, root=root)
    defaults = chapter_parameters(chapter, root=root)
    given = {k: v for k, v in params.items() if v is not None}
    cfg = resolve_paths(merge_parameters(base, defaults, given), root=root)
    ctx = ChapterContext(
        chapter=chapter,
        profile=str(cfg["name"]),
        cfg=cfg,
        params={**defaults, **given},
        profile_dir=Path(cfg["results_dir"]),
        results_dir=Path(cfg["results_dir"]) / chapter,
        device=pick_device(str(cfg["device"])),
        root=root,
    )
    seed_everything(int(cfg["seed"]))
    register_offline_renderer()
    # tqdm.auto warns on every import in a kernel without ipywidgets; the bars are off in book runs
    warnings.filterwarnings("ignore", message="IProgress not found")
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:
        ctx.parameters_file = write_parameters(ctx, profile_file=profile_file)
    else:
        ctx.parameters_file = ctx.results_dir / "parameters.json"
    return ctx
