"""The protocol of the box heads' classification losses, and softmax cross-entropy, which defines it.

A cascade stage asks its class loss four things, so that the long-tail losses drop into the same
head as plain cross-entropy:

- ``num_outputs``: how many logits the classifier produces (``K + 1``; Seesaw: ``K + 2``);
- ``make_classifier(in_features=...)``: the last layer (``nn.Linear``; Seesaw: ``NormedLinear``);
- ``loss(logits, labels)``: a scalar, with ``labels`` in ``0..K`` and **0 = background** (the
  project's convention; mmdet puts the background last);
- ``probabilities(logits)``: the inference-time scores ``[N, K + 1]`` with the background in
  column 0, so that the detector keeps taking columns ``1..K`` as class scores.

Each loss is an ``nn.Module``: running statistics (Seesaw's class counts, EQLv2's accumulated
gradients) are buffers and travel with ``state_dict`` and checkpoints. A cascade needs one loss
object **per stage** (mmdet builds one per ``bbox_head``, each with its own statistics).


The softmax family (cross-entropy, Seesaw) is in :mod:`.softmax`, the sigmoid family (EQLv2,
Federated) in :mod:`.sigmoid`; :func:`o365lib.modeling.losses.build_class_loss` builds one by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMALIZERS = ("rois", "positives")


class ClassLoss(nn.Module):
    """Softmax cross-entropy over ``K + 1`` logits (background at 0): the default, and the protocol.

    Subclasses override ``num_outputs``, ``make_classifier``, ``loss_terms`` and ``probabilities``.
    ``loss`` is the sum of ``loss_terms`` (several named terms let a trainer log them apart).
    """

    name = "softmax"
    #: whether this loss's classifier has another form that can start from a trained softmax classifier
    #: (``classifier_from_softmax`` returns a conversion, not ``None`` nor the same tensors)
    converts_softmax = False

    def __init__(self, *, num_classes: int) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = int(num_classes)

    @property
    def num_outputs(self) -> int:
        """Number of logits the classifier must produce."""
        return self.num_classes + 1

    def make_classifier(self, in_features: int) -> nn.Module:
        """The classifier layer: ``nn.Linear(in_features, num_outputs)``, weights N(0, 0.01), bias 0."""
        layer = nn.Linear(int(in_features), self.num_outputs)
        nn.init.normal_(layer.weight, std=0.01)
        nn.init.zeros_(layer.bias)
        return layer

    def classifier_from_softmax(
        self, weight: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Start values of this loss's classifier from a trained softmax classifier (``weight``
        ``[K + 1, F]``, ``bias`` ``[K + 1]``, background in row 0); ``None``: no counterpart, start fresh.

        Softmax cross-entropy: the same tensors.
        """
        return weight.clone(), bias.clone()

    def _check(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] != self.num_outputs:
            raise ValueError(
                f"{type(self).__name__} expects logits [N, {self.num_outputs}], got {tuple(logits.shape)}"
            )
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")

    def loss_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms (scalars) whose sum is ``loss``; ``labels`` in 0..K, 0 = background."""
        self._check(logits, labels)
        if logits.shape[0] == 0:
            return {"cls": logits.sum()}
        return {"cls": F.cross_entropy(logits, labels.long())}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of one stage (before the stage weight)."""
        terms = list(self.loss_terms(logits, labels).values())
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Inference scores ``[N, K + 1]``, background in column 0: the softmax."""
        return F.softmax(logits.float(), dim=-1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def as_counts(counts: Sequence[float] | torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """A float64 tensor of ``num_classes`` non-negative counts (labels 1..K in order)."""
    if isinstance(counts, Mapping):
        raise TypeError(
            "counts must be a sequence in label order (labels 1..K); convert a {category_id: count} "
            "dict with counts_in_label_order(counts, category_ids=label_map.category_ids)"
        )
    values = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if values.numel() != num_classes:
        raise ValueError(f"expected {num_classes} per-class counts (labels 1..K), got {values.numel()}")
    if bool((values < 0).any()) or not bool(torch.isfinite(values).all()):
        raise ValueError("per-class counts must be finite and non-negative")
    return values


def counts_in_label_order(counts: Mapping[int, float], *, category_ids: Sequence[int]) -> list[float]:
    """``[counts[c] for c in category_ids]``: a ``{category_id: count}`` dict in model-label order.

    Pass ``label_map.category_ids`` (sorted ids, so label ``l`` is ``category_ids[l - 1]``); a
    category missing from ``counts`` is an error naming it.
    """
    missing = [c for c in category_ids if c not in counts]
    if missing:
        raise ValueError(f"no count for category ids {missing[:10]}")
    return [float(counts[c]) for c in category_ids]
