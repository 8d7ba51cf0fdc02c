"""The softmax family of class losses: Seesaw beside plain cross-entropy (:class:`.base.ClassLoss`).

Seesaw loss (Wang et al., CVPR 2021), with the facts of mmdet 3.3.0's ``SeesawLoss``:

- ``K + 2`` logits: ``K`` class logits trained with a softmax over the positives only, and an
  objectness pair (object / background) trained with cross-entropy over all sampled boxes;
- for a positive of class ``i`` and every other class ``j`` the logit ``z_j`` gets
  ``log S_ij`` added, ``S_ij = M_ij * C_ij``:
  mitigation ``M_ij = (N_j / N_i) ** p`` where ``N_j < N_i`` (else 1), ``N`` the running number of
  sampled boxes per class (clamped to at least 1), counted *including* the current batch;
  compensation ``C_ij = (sigma_j / sigma_i) ** q`` where ``sigma_j > sigma_i`` (else 1), ``sigma``
  the detached softmax of the class logits, ``sigma_i`` clamped to at least ``eps``;
- ``p = 0.8``, ``q = 2``, ``eps = 1e-2``; the classifier is a cosine classifier with temperature 20;
- scores: class softmax times the objectness probability; background = the background
  probability of the pair (rows sum to 1).

Our column layout of the ``K + 2`` logits keeps the background first:
``[objectness background, objectness object, class 1, ..., class K]``; mmdet's is
``[class 0, ..., class K-1, object, background]`` (see ``seesaw_columns_from_mmdet``).

Normalisation: mmdet's ``BBoxHead`` calls its loss with ``avg_factor`` = number of sampled boxes,
so the class term is a *sum over positives divided by all sampled boxes* (``normalizer="rois"``,
the default, as the detector trains). ``normalizer="positives"`` averages the class term over the
positives, as ``SeesawLoss`` does when called without ``avg_factor``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from o365lib.modeling.losses.base import NORMALIZERS, ClassLoss, as_counts


class NormedLinear(nn.Linear):
    """Cosine classifier: ``temperature * <x / (|x| + eps), w / (|w| + eps)> + bias``.

    The facts of mmdet's ``NormedLinear`` (temperature 20, power 1, eps 1e-6, weights N(0, 0.01),
    bias 0), which Seesaw's configs use as the class predictor.
    """

    def __init__(
        self, in_features: int, out_features: int, *, temperature: float = 20.0, eps: float = 1e-6
    ) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.temperature = float(temperature)
        self.eps = float(eps)
        nn.init.normal_(self.weight, std=0.01)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unit_weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        unit_x = x / (x.norm(dim=1, keepdim=True) + self.eps)
        return F.linear(unit_x * self.temperature, unit_weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}, eps={self.eps}"


def seesaw_columns_from_mmdet(num_classes: int) -> list[int]:
    """Column permutation ``perm`` with ``ours = mmdet_logits[:, perm]`` for Seesaw's ``K + 2`` logits.

    mmdet: ``[class 0..K-1, object, background]``; ours: ``[background, object, class 1..K]``.
    Also maps mmdet ``fc_cls`` weight rows onto ours (``ours_weight = mmdet_weight[perm]``).
    """
    k = int(num_classes)
    return [k + 1, k] + list(range(k))


class SeesawClassLoss(ClassLoss):
    """Seesaw loss over ``K + 2`` logits (see the module docstring for formulas and layout)."""

    name = "seesaw"

    def __init__(
        self,
        *,
        num_classes: int,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 1e-2,
        temperature: float = 20.0,
        loss_weight: float = 1.0,
        normalizer: str = "rois",
        class_counts: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        """``class_counts`` (``K`` values, labels 1..K) optionally starts the running counts (mmdet
        starts at zero); the background count starts at zero either way."""
        super().__init__(num_classes=num_classes)
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
        self.p, self.q, self.eps = float(p), float(q), float(eps)
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.normalizer = normalizer
        counts = torch.zeros(self.num_classes + 1, dtype=torch.float64)
        if class_counts is not None:
            counts[1:] = as_counts(class_counts, num_classes=self.num_classes)
        #: sampled boxes seen per label (index 0 = background), accumulated by every ``loss`` call
        self.register_buffer("class_counts", counts)

    @property
    def num_outputs(self) -> int:
        return self.num_classes + 2

    def make_classifier(self, in_features: int) -> nn.Module:
        return NormedLinear(int(in_features), self.num_outputs, temperature=self.temperature)

    def classifier_from_softmax(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """``None``: a cosine classifier over ``K + 2`` outputs has no linear counterpart of softmax rows."""
        return

    def seesaw_log_weights(self, class_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log S_ij`` ``[P, K]`` for positives with class logits ``[P, K]`` and 0-based targets."""
        counts = self.class_counts[1:].clamp(min=1.0)
        weights = torch.ones_like(class_logits)
        if self.p > 0:
            ratio = (counts[None, :] / counts[targets][:, None]).to(class_logits.dtype)
            weights = weights * torch.where(ratio < 1.0, ratio.pow(self.p), 1.0)
        if self.q > 0:
            sigma = F.softmax(class_logits.detach(), dim=1)
            own = sigma.gather(1, targets[:, None]).clamp(min=self.eps)
            ratio = sigma / own
            weights = weights * torch.where(ratio > 1.0, ratio.pow(self.q), 1.0)
        log_weights = weights.log()
        # the target's own logit is never changed
        return log_weights.scatter(1, targets[:, None], 0.0)

    def loss_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"objectness": ..., "classes": ...}``; updates ``class_counts`` first (as mmdet)."""
        self._check(logits, labels)
        labels = labels.long()
        with torch.no_grad():
            self.class_counts += torch.bincount(labels, minlength=self.num_classes + 1).to(
                self.class_counts.dtype
            )
        num_rois = logits.shape[0]
        if num_rois == 0:
            return {"objectness": logits.sum(), "classes": logits.sum()}
        positive = labels > 0
        # objectness pair: column 0 background, column 1 object
        objectness = F.cross_entropy(logits[:, :2], positive.long()) * self.loss_weight
        class_logits = logits[positive, 2:]
        targets = labels[positive] - 1
        if targets.numel() == 0:
            classes = class_logits.sum()
        else:
            adjusted = class_logits + self.seesaw_log_weights(class_logits, targets)
            total = F.cross_entropy(adjusted, targets, reduction="sum")
            denominator = num_rois if self.normalizer == "rois" else targets.numel()
            classes = total / denominator * self.loss_weight
        return {"objectness": objectness, "classes": classes}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``[background, P(object) * softmax(classes)]``: rows sum to 1 (mmdet's ``get_activation``)."""
        logits = logits.float()
        pair = F.softmax(logits[:, :2], dim=-1)
        classes = F.softmax(logits[:, 2:], dim=-1) * pair[:, 1:2]
        return torch.cat([pair[:, :1], classes], dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, p={self.p}, q={self.q}, eps={self.eps}, "
            f"temperature={self.temperature}, normalizer={self.normalizer!r}"
        )
