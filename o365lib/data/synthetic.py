"""The embedded synthetic long-tailed detection data set (COCO format on disk).

``make_dataset(out_dir, profile, seed)`` writes::

    out_dir/images/<split>_<image id>.png      128x128 RGB, one folder for every split
    out_dir/{train,val,test}.json              full track, 365 classes
    out_dir/{tiny_train,tiny_val,tiny_test}.json   tiny track, the 65 classes of ranks 301-365
    out_dir/manifest.json                      profile, seed, generator version, file sizes/hashes

Same ``(profile, seed)`` gives byte-identical files (seeded numpy generators, PNGs with fixed
settings, JSON with sorted keys and fixed separators). A second call with a complete,
matching manifest returns at once; a partial or corrupt folder is regenerated. Generation
happens in a temporary sibling folder that is renamed into place, so ``out_dir`` never holds
a half-written data set. ``out_dir`` belongs to the generator: a non-empty folder without a
manifest is refused rather than overwritten.

The design (categories, the long tail, hard and easy tail styles) is in
:mod:`o365lib.data.synthetic_plan`; the drawing in :mod:`o365lib.data.synthetic_render`.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from o365lib.data.synthetic_plan import (
    NUM_CLASSES,
    PROFILES,
    SPLITS,
    TINY_RANKS,
    SyntheticPlan,
    SyntheticProfile,
    plan_dataset,
    train_counts,
)
from o365lib.data.synthetic_render import encode_png, render_image
from o365lib.io import current_umask

__all__ = [
    "GENERATOR_VERSION",
    "NUM_CLASSES",
    "PROFILES",
    "TINY_RANKS",
    "SyntheticPaths",
    "SyntheticPlan",
    "SyntheticProfile",
    "dataset_is_current",
    "dump_json",
    "make_dataset",
    "plan_dataset",
    "publish_folder",
    "render_images",
    "train_counts",
]

GENERATOR_VERSION = "5"  # bump whenever the bytes written change
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SyntheticPaths:
    """Where a generated data set lives. All splits share the ``images`` folder."""

    root: Path
    images: Path
    train: Path
    val: Path
    test: Path
    tiny_train: Path
    tiny_val: Path
    tiny_test: Path

    @classmethod
    def under(cls, root: str | Path) -> SyntheticPaths:
        root = Path(root)
        return cls(root=root, images=root / "images", **{s: root / f"{s}.json" for s in SPLITS})

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST


def dump_json(obj: object) -> bytes:
    """Canonical JSON bytes: sorted keys, fixed separators, UTF-8, trailing newline."""
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _render_chunk(args: tuple[int, int, list[tuple[str, int, list]], str]) -> int:
    """Render and write a list of ``(file_name, image_id, objects)``; returns the number written."""
    seed, size, jobs, image_dir = args
    for file_name, image_id, objects in jobs:
        png = encode_png(render_image(size=size, seed=[seed, 7, image_id], objects=objects))
        Path(image_dir, file_name).write_bytes(png)
    return len(jobs)


def _render_jobs(plan: SyntheticPlan) -> list[tuple[str, int, list]]:
    cats = {c["id"]: c for c in plan.categories}
    anns: dict[int, list] = {}
    jobs = []
    for split in SPLITS:
        for ann in plan.splits[split]["annotations"]:
            anns.setdefault(ann["image_id"], []).append(ann)
        for img in plan.splits[split]["images"]:
            objects = [(cats[a["category_id"]]["shape"], cats[a["category_id"]]["colour"],
                        cats[a["category_id"]]["texture"], a["bbox"]) for a in anns.get(img["id"], [])]
            jobs.append((img["file_name"], img["id"], objects))
    return jobs


def render_images(jobs: list[tuple[str, int, list]], *, image_dir: Path, seed: int, size: int, workers: int = 1) -> None:
    """Render ``(file_name, image_id, objects)`` jobs as PNGs into ``image_dir`` (image seed ``[seed, 7, id]``)."""
    chunks = [(seed, size, jobs[i:i + 200], str(image_dir)) for i in range(0, len(jobs), 200)]
    if workers > 1:  # fork where there is one: no re-import of the caller's __main__ (as spawn does)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
            list(pool.map(_render_chunk, chunks))
    else:
        for chunk in chunks:
            _render_chunk(chunk)


def _write(plan: SyntheticPlan, root: Path, profile: SyntheticProfile, workers: int) -> None:
    """Write images, split JSON and (last) the manifest into ``root``."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True)
    jobs = _render_jobs(plan)
    render_images(jobs, image_dir=image_dir, seed=plan.seed, size=plan.image_size, workers=workers)
    files = {}
    for split in SPLITS:
        data = dump_json(plan.splits[split])
        (root / f"{split}.json").write_bytes(data)
        files[f"{split}.json"] = {"bytes": len(data), "sha256": _sha256(data)}
    images = {name: (image_dir / name).stat().st_size for name, _, _ in sorted(jobs)}
    manifest = {
        "generator": "o365lib.data.synthetic", "version": GENERATOR_VERSION, "profile": plan.profile,
        "seed": plan.seed, "profile_params": asdict(profile), "files": files, "images": images,
        "num_classes": NUM_CLASSES, "tiny_ranks": list(TINY_RANKS),
    }
    (root / MANIFEST).write_bytes(dump_json(manifest))


def _cache_ok(paths: SyntheticPaths, *, profile: str, seed: int, params: dict) -> bool:
    """True when ``paths.root`` holds a complete data set made with these arguments."""
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
        if (manifest.get("version"), manifest.get("profile"), manifest.get("seed"),
                manifest.get("profile_params")) != (GENERATOR_VERSION, profile, seed, params):
            return False
        for name, meta in manifest["files"].items():
            data = (paths.root / name).read_bytes()
            if len(data) != meta["bytes"] or _sha256(data) != meta["sha256"]:
                return False
        with os.scandir(paths.images) as entries:
            sizes = {e.name: e.stat().st_size for e in entries}
        return sizes == manifest["images"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def dataset_is_current(out_dir: str | Path, *, profile: str = "default", seed: int = 0) -> bool:
    """True when ``out_dir`` holds the complete data set :func:`make_dataset` would make with these arguments."""
    if profile not in PROFILES:
        return False
    return _cache_ok(SyntheticPaths.under(Path(out_dir).resolve()), profile=profile, seed=seed,
                     params=asdict(PROFILES[profile]))


def make_dataset(
    out_dir: str | Path, profile: str = "default", seed: int = 0, *, workers: int = 1
) -> SyntheticPaths:
    """Generate (or reuse) the synthetic data set in ``out_dir``; see the module docstring.

    ``profile`` is a key of :data:`PROFILES` ("smoke" or "default"). ``workers > 1`` renders
    with a pool of forked processes (it helps only when cores are idle); the output is
    byte-identical either way, because each image has its own seed.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown synthetic profile {profile!r}; known: {sorted(PROFILES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    params = asdict(PROFILES[profile])
    paths = SyntheticPaths.under(Path(out_dir).resolve())
    publish_folder(paths.root, fill=lambda tmp: _write(plan_dataset(profile, seed), tmp, PROFILES[profile], workers),
                   is_current=lambda: _cache_ok(paths, profile=profile, seed=seed, params=params))
    return paths


def publish_folder(root: Path, *, fill: Callable[[Path], None], is_current: Callable[[], bool]) -> None:
    """Make the generated folder ``root`` unless ``is_current()``: ``fill`` a temporary sibling, rename it in.

    ``root`` never holds a half-written set. A non-empty ``root`` without a :data:`MANIFEST` is refused
    (the folder is not the generator's); a stale or partial one is swapped out only once the new one is
    complete. When another process finishes first, its copy is kept.
    """
    if is_current():
        return
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"synthetic data folder {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).exists():
        raise FileExistsError(
            f"synthetic data folder {root} is not empty and has no {MANIFEST}: refusing to overwrite it "
            f"(choose an empty or new folder)"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # the mode of a plain mkdir, not mkdtemp's private 0700
    try:
        fill(tmp)
        if root.exists():  # stale/partial cache: move it aside, then swap in the new one
            if is_current():
                return  # another process finished first
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "data")
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, root)
            except OSError:  # another process renamed its copy into place first
                if not is_current():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
