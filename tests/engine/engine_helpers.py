"""Small stand-ins for the engine tests: an in-memory detection data set and a tiny model."""

from __future__ import annotations

import torch

from o365lib.modeling import build_detector


class ToyDetections(torch.utils.data.Dataset):
    """``n`` random 64x64 images with one or two boxes of labels 1..3 (deterministic in ``seed``)."""

    def __init__(self, n: int = 16, *, seed: int = 0, size: int = 64, nan_at: int | None = None) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = [torch.rand(3, size, size, generator=generator) for _ in range(n)]
        self.targets = []
        for index in range(n):
            count = 1 + index % 2
            xy = torch.randint(0, size // 2, (count, 2), generator=generator).float()
            wh = torch.randint(8, size // 2, (count, 2), generator=generator).float()
            labels = torch.randint(1, 4, (count,), generator=generator)
            self.targets.append(
                {"boxes": torch.cat([xy, xy + wh], 1), "labels": labels, "image_id": 100 + index}
            )
        self.nan_at = nan_at

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index].clone()
        if self.nan_at is not None and index == self.nan_at:
            image[:] = float("nan")
        target = self.targets[index]
        return image, {
            "boxes": target["boxes"].clone(),
            "labels": target["labels"].clone(),
            "image_id": target["image_id"],
        }


def toy_model(num_classes: int = 3, *, seed: int = 0):
    torch.manual_seed(seed)
    return build_detector(
        num_classes, min_size=64, max_size=64, representation_size=64, box_batch_size_per_image=32
    )


def toy_config(**overrides):
    from o365lib.engine import TrainConfig

    values = {
        "iterations": 6,
        "batch_size": 2,
        "lr": 0.01,
        "warmup_iters": 2,
        "lr_steps": (0.5,),
        "scales": (56, 64),
        "checkpoint_every": 2,
        "progress": False,
        "seed": 3,
    }
    values.update(overrides)
    return TrainConfig(**values)
