"""Classification losses of the cascade box heads, chosen by name: softmax, Seesaw, EQLv2, Federated.

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

``build_class_loss("softmax" | "seesaw" | "eqlv2" | "federated", num_classes=K, ...)`` builds one.
The sigmoid losses (EQLv2, Federated) live in ``o365lib.modeling.sigmoid_class_losses``.

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

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

CLASS_LOSSES = ("softmax", "seesaw", "eqlv2", "federated")
NORMALIZERS = ("rois", "positives")


class ClassLoss(nn.Module):
    """Softmax cross-entropy over ``K + 1`` logits (background at 0): the default, and the protocol.

    Subclasses override ``num_outputs``, ``make_classifier``, ``loss_terms`` and ``probabilities``.
    ``loss`` is the sum of ``loss_terms`` (several named terms let a trainer log them apart).
    """

    name = "softmax"

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
    from o365lib.modeling.sigmoid_class_losses import EQLv2ClassLoss, FederatedClassLoss

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
