"""Backbone pre-training on a class-balanced generated set: the synthetic profiles' "ImageNet".

Lu et al. 2019's "better pretrained backbone" (+0.6 mAP) swaps the ImageNet weights for stronger
ones. Nothing can be downloaded here, so on the synthetic profiles "pretrained" means: the
detector's backbone is first trained as a *classifier* of object crops rendered by the same
generator, every class equally frequent (``num_per_class`` crops each). ImageNet does not
contain Objects365's label set, so neither does this set: its classes are compositions of
colours and textures with *other shape families* (hexagon, arrow, tee, ...; see
:data:`o365lib.data.synthetic_render.PRETRAIN_SHAPES`), never one of the 365 detection classes.
The backbone learns colours, textures and edges that transfer, but not the identity of any
detection class (in particular not the rare ones). A "better backbone" is a larger or longer
pretraining on the same disjoint set. For real runs the profile's ``model.backbone_weights``
names a local weights file instead and this module is not used.

``render_crops`` makes the set (deterministic in ``seed``), ``pretrain_backbone`` trains the
backbone body with a linear classifier on its pooled last stage, and ``save_backbone`` writes
the body's state dict in the format ``build_detector(backbone_weights=...)`` loads.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from o365lib.data.synthetic_render import COLOURS, PRETRAIN_SHAPES, SHAPE_ASPECT, TEXTURES, render_image
from o365lib.engine.checkpoint import save_atomic
from o365lib.progress import progress_bar


def pretrain_categories() -> list[dict]:
    """The pretraining classes: every PRETRAIN_SHAPES x COLOURS x TEXTURES composition (384), ids 1..384.

    Fixed (no seed); disjoint from the detection classes, whose shapes are ``SHAPES``.
    """
    return [{"id": index + 1, "name": f"{colour} {texture} {shape}", "shape": shape, "colour": colour,
             "texture": texture}
            for index, (shape, colour, texture) in enumerate(itertools.product(PRETRAIN_SHAPES, COLOURS, TEXTURES))]


def render_crops(*, num_per_class: int, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Balanced classification crops: ``num_per_class`` images of every pretraining class, one object each.

    Returns ``(images uint8 [N, size, size, 3], labels int64 [N] in 0..383 (the order of
    :func:`pretrain_categories`), categories)``. Object sides vary from a third of the crop to
    almost all of it, so the backbone sees both texture-rich and texture-poor instances.
    """
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be >= 1, got {num_per_class}")
    categories = pretrain_categories()
    rng = np.random.default_rng([int(seed), 9001])
    images = np.empty((len(categories) * num_per_class, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(categories)), num_per_class)
    for index, label in enumerate(labels):
        cat = categories[label]
        side = rng.uniform(size / 3, size * 0.9)
        aspect = SHAPE_ASPECT[cat["shape"]] * rng.uniform(0.9, 1.1)
        w = int(max(4, min(size, round(side * min(aspect, 1.0) if aspect < 1 else side))))
        h = int(max(4, min(size, round(side / max(aspect, 1.0)))))
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        images[index] = render_image(size=size, seed=[int(seed), 9002, index],
                                     objects=[(cat["shape"], cat["colour"], cat["texture"], [x, y, w, h])])
    return images, labels.astype(np.int64), categories


class _Classifier(nn.Module):
    """Backbone body + global average pooling + one linear layer."""

    def __init__(self, body: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1))


def pretrain_backbone(body: nn.Module, images: np.ndarray, labels: np.ndarray, *, channels: int,
                      epochs: int = 2, batch_size: int = 128, lr: float = 0.1, weight_decay: float = 1e-4,
                      val_fraction: float = 0.1, seed: int = 0, device: str = "cpu",
                      progress: bool = True) -> dict:
    """Train ``body`` (in place) as a classifier of ``images``; returns the history.

    SGD with momentum 0.9, cosine learning rate, random horizontal flips; a held-out
    ``val_fraction`` of the crops measures top-1 accuracy after each epoch. ``channels`` is the
    number of channels of the body's last stage.
    """
    generator = torch.Generator().manual_seed(int(seed))
    num_classes = int(labels.max()) + 1
    model = _Classifier(body, channels, num_classes).to(device)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8, scaled per batch
    y = torch.from_numpy(labels)
    order = torch.randperm(len(y), generator=generator)
    n_val = int(len(y) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    steps = epochs * max(1, len(train_idx) // batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = {"loss": [], "val_accuracy": [], "seconds": 0.0}
    start = time.perf_counter()
    bar = progress_bar(total=steps, desc="pretrain backbone", disable=not progress)
    for _ in range(epochs):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for i in range(0, len(perm) - batch_size + 1, batch_size):
            batch = perm[i:i + batch_size]
            inputs = x[batch].to(device).float().div_(255)
            flip = torch.rand(len(batch), generator=generator) < 0.5
            inputs[flip] = inputs[flip].flip(-1)
            loss = F.cross_entropy(model(inputs), y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            history["loss"].append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        history["val_accuracy"].append(_accuracy(model, x[val_idx], y[val_idx], device=device))
    bar.close()
    history["seconds"] = time.perf_counter() - start
    return history


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, device: str, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size].to(device).float().div_(255))
        correct += int((logits.argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))


def save_backbone(body: nn.Module, path: str | Path) -> Path:
    """Write the body's state dict atomically (the format ``backbone_weights=`` loads)."""
    return save_atomic({k: v.detach().cpu() for k, v in body.state_dict().items()}, path)
