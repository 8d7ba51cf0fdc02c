"""Classification losses of the cascade box heads, chosen by name: softmax, Seesaw, EQLv2, Federated.

- :mod:`.base`: the protocol a cascade stage asks of its loss, and softmax cross-entropy;
- :mod:`.softmax`: Seesaw (Wang et al. 2021), a softmax over ``K + 2`` outputs;
- :mod:`.sigmoid`: EQLv2 (Tan et al. 2021) and the federated loss (Zhou et al. 2021), sigmoids.

``build_class_loss("softmax" | "seesaw" | "eqlv2" | "federated", num_classes=K, ...)`` builds one.
Imports run one way: base <- softmax, sigmoid <- this package.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from o365lib.modeling.losses.base import NORMALIZERS, ClassLoss, as_counts, counts_in_label_order
from o365lib.modeling.losses.sigmoid import EQLv2ClassLoss, FederatedClassLoss, log_odds_against_background
from o365lib.modeling.losses.softmax import NormedLinear, SeesawClassLoss, seesaw_columns_from_mmdet

__all__ = [
    "CLASS_LOSSES", "CONVERTIBLE_LOSSES", "LOSS_TYPES", "NORMALIZERS", "ClassLoss", "EQLv2ClassLoss", "FederatedClassLoss", "NormedLinear",
    "SeesawClassLoss", "as_counts", "build_class_loss", "counts_in_label_order", "log_odds_against_background",
    "seesaw_columns_from_mmdet",
]

#: name -> class of every classification loss
LOSS_TYPES: dict[str, type[ClassLoss]] = {"softmax": ClassLoss, "seesaw": SeesawClassLoss, "eqlv2": EQLv2ClassLoss,
                                          "federated": FederatedClassLoss}
CLASS_LOSSES = tuple(LOSS_TYPES)
#: the losses whose classifier can start from a trained softmax classifier (log-odds against background)
CONVERTIBLE_LOSSES = tuple(name for name, kind in LOSS_TYPES.items() if kind.converts_softmax)


def build_class_loss(
    name: str = "softmax",
    *,
    num_classes: int,
    class_counts: Sequence[float] | torch.Tensor | None = None,
    image_counts: Sequence[float] | torch.Tensor | None = None,
    **options,
) -> ClassLoss:
    """Build the class loss ``name`` for ``num_classes`` foreground classes.

    ``class_counts`` / ``image_counts``: per-class training instances / images, ``K`` values in
    label order (1..K). Federated needs ``image_counts`` (its sampling weights); Seesaw takes
    ``class_counts`` only as an optional start of its running counts; the other losses take none.
    ``options`` go to the loss's constructor (e.g. ``p``, ``q`` for Seesaw; ``gamma``, ``mu``,
    ``alpha`` for EQLv2; ``num_sample_categories``, ``freq_weight_power`` for Federated).
    """
    if name not in CLASS_LOSSES:
        raise ValueError(f"unknown class loss {name!r}; choose one of {CLASS_LOSSES}")
    if class_counts is not None and name != "seesaw":
        raise ValueError(f"class loss {name!r} does not use class_counts")
    if image_counts is not None and name != "federated":
        raise ValueError(f"class loss {name!r} does not use image_counts")
    if name == "softmax":
        return ClassLoss(num_classes=num_classes, **options)
    if name == "seesaw":
        return SeesawClassLoss(num_classes=num_classes, class_counts=class_counts, **options)
    if name == "eqlv2":
        return EQLv2ClassLoss(num_classes=num_classes, **options)
    if image_counts is None:
        raise ValueError("the federated loss needs image_counts (training images per class, label order)")
    return FederatedClassLoss(num_classes=num_classes, image_counts=image_counts, **options)
