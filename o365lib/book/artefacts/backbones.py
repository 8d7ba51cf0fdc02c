"""Backbone initialisations: a weights file, or the synthetic profiles' pretraining, or none.

:func:`ensure_backbone` is the synthetic profiles' stand-in for ImageNet weights: a backbone
pretrained as a classifier of generated classes disjoint from the detection classes (an explicit
artefact, never a side effect of building a model). :func:`baseline_backbone` picks the profile's
initialisation.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from o365lib.book.artefacts import resolver
from o365lib.book.artefacts.keys import key_of
from o365lib.data.synthetic import GENERATOR_VERSION
from o365lib.io import write_json
from o365lib.progress import progress_enabled


def ensure_backbone(ctx, *, crops_per_class: int, crop_size: int, epochs: int, lr: float) -> Path:
    """Backbone weights pretrained as a classifier of generated crops of classes disjoint from the 365.

    Made once per specification (rank 0), kept under ``models/pretrained-backbone-<key>/``. The
    pretraining is one fixed artefact like ImageNet weights: it does not vary with the detector seeds.
    """
    from o365lib.modeling.backbones import build_body
    from o365lib.pretrain import pretrain_backbone, render_crops, save_backbone

    spec = {"backbone": ctx.cfg.model.backbone, "crops": int(crops_per_class), "size": int(crop_size),
            "epochs": int(epochs), "lr": float(lr), "generator": GENERATOR_VERSION}
    out = Path(ctx.profile_dir) / "models" / f"pretrained-backbone-{key_of(spec)}"

    def make():
        start = time.perf_counter()
        images, labels, _ = render_crops(num_per_class=spec["crops"], size=spec["size"], seed=0)
        body, channels = build_body(spec["backbone"], norm="bn", dcn=False)
        history = pretrain_backbone(body, images, labels, channels=channels[-1], epochs=spec["epochs"],
                                    lr=spec["lr"], seed=0, device=ctx.device, progress=progress_enabled())
        seconds = time.perf_counter() - start  # rendering included
        return body, history, {"seconds": seconds, "images_per_s": len(labels) * spec["epochs"] / seconds}

    def write(value, path):
        body, history, cost = value
        write_json(out / "history.json", {"spec": spec, **history})
        write_json(out / "cost.json", cost)
        save_backbone(body, path)

    return resolver.resolve(ctx.profile_dir, kind="backbone", name=out.name, path=out / "backbone.pt",
                            make=make, write=write)


def baseline_backbone(ctx) -> Path | None:
    """The profile's backbone initialisation: ``model.backbone_weights``, else ``model.pretrain``, else none."""
    model = ctx.cfg.model
    if model.backbone_weights:
        return existing_file(model.backbone_weights, key="model.backbone_weights", ctx=ctx)
    if model.pretrain is not None:
        return ensure_backbone(ctx, **asdict(model.pretrain))
    return None


def existing_file(path, *, key: str, ctx) -> Path:
    """A user-supplied file named by the profile's ``key``; a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"profile {ctx.profile!r}: {key} {path} does not exist")
    return path
