"""Sigmoid class losses of the cascade box heads: EQLv2 and the federated loss.

Both follow the protocol of ``o365lib.modeling.losses.base.ClassLoss`` (``K + 1`` logits,
background in column 0, ``labels`` in ``0..K`` with 0 = background).

**EQLv2** (Tan et al., CVPR 2021, "Equalization Loss v2"), with the facts of the authors' code:

- one binary cross-entropy per logit, the background logit included (target 1 for background
  boxes), summed and divided by the number of sampled boxes;
- per foreground class ``j`` the gradients of its logit are accumulated over training, split into
  positive (boxes of class ``j``) and negative (all other boxes) parts:
  ``pos_j += sum |dL/dz_ij| over positives``, ``neg_j += ... over negatives``, where the gradient
  is the *weighted* BCE gradient ``w_ij * (sigmoid(z_ij) - y_ij)`` per box (no ``1 / N``);
- ``g_j = pos_j / (neg_j + 1e-10)``; negative weight ``f(g_j) = 1 / (1 + exp(-gamma (g_j - mu)))``,
  positive weight ``1 + alpha (1 - f(g_j))``; ``gamma = 12``, ``mu = 0.8``, ``alpha = 4``; the
  background logit always has weight 1; before anything was accumulated all weights are 1;
- the accumulated gradients are summed over processes (``torch.distributed.all_reduce``) when a
  process group is initialised, so that every rank uses the same weights;
- scores: ``sigmoid`` per class times ``1 - sigmoid(background logit)``; the background column is
  ``sigmoid(background logit)`` (rows do not sum to 1).

``gradient_source="analytic"`` (default) collects the gradient at loss time from the formula above,
as the authors' code does. ``"hook"`` registers a backward hook on the logits and reads the
gradient autograd computes (times ``N / loss_weight``, which undoes the loss's own scaling); it
equals the analytic value when nothing else scales the loss, but it also sees the cascade's stage
weight (a constant factor, which cancels in ``g``) and an AMP ``GradScaler``'s changing scale (which
does not). Hook gradients are folded into the statistics at the next ``loss`` call.

**Federated loss** (Zhou et al., "Probabilistic two-stage detection", CenterNet2; the formulation
of detectron2's ``FastRCNNOutputLayers``):

- sigmoid BCE on the ``K`` foreground logits (the background logit is not trained);
- each call uses a class subset: the classes among the sampled boxes' labels, plus classes drawn
  without replacement with probability proportional to ``image_count ** 0.5``, so that the subset
  has ``num_sample_categories = 50`` members. As in detectron2 the background label, when present
  among the boxes, counts towards the 50 (and is then dropped), and present classes are never
  drawn again. If fewer drawable classes remain than needed, all of them are taken (detectron2
  would fail on small label sets);
- loss = sum of BCE over all boxes and the subset's classes / number of sampled boxes;
- classifier bias starts at ``-log((1 - 0.01) / 0.01)`` (prior probability 0.01, as detectron2
  and CenterNet2 with sigmoid classification);
- scores: ``sigmoid`` per class; the background column is ``1 - max`` class score (a
  convention: the background logit is never trained, and ``1 - max`` keeps it in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from o365lib.modeling.losses.base import ClassLoss, as_counts

GRADIENT_SOURCES = ("analytic", "hook")


def log_odds_against_background(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid classifier start from a trained softmax one (``[K + 1, F]``, ``[K + 1]``, background row 0).

    Class row ``c`` becomes ``w_c - w_0``, ``b_c - b_0``: its logit is the softmax's log-odds of class
    ``c`` against background, ``log(p_c / p_0)``, so that ``sigmoid`` of it is ``p_c / (p_c + p_0)``, the
    two-way decision a one-vs-rest sigmoid makes for a box that is either ``c`` or background. Row 0
    becomes zeros (EQLv2's background logit starts at probability 1/2; the federated loss never reads it).
    """
    return weight - weight[:1], bias - bias[:1]


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes when a process group is initialised (in place); returns it."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class EQLv2ClassLoss(ClassLoss):
    """Equalization loss v2 over ``K + 1`` sigmoid logits (formulas in the module docstring)."""

    name = "eqlv2"
    converts_softmax = True

    def __init__(
        self,
        *,
        num_classes: int,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        loss_weight: float = 1.0,
        gradient_source: str = "analytic",
        prior_prob: float | None = None,
    ) -> None:
        """``prior_prob``: optional classifier bias start ``-log((1 - p) / p)`` (default: bias 0)."""
        super().__init__(num_classes=num_classes)
        if gradient_source not in GRADIENT_SOURCES:
            raise ValueError(f"gradient_source must be one of {GRADIENT_SOURCES}, got {gradient_source!r}")
        self.gamma, self.mu, self.alpha = float(gamma), float(mu), float(alpha)
        self.loss_weight = float(loss_weight)
        self.gradient_source = gradient_source
        self.prior_prob = prior_prob
        #: accumulated |gradient| of positives / negatives per class (labels 1..K)
        self.register_buffer("pos_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes, dtype=torch.float64))
        #: number of collections so far (0: all weights are 1)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))
        # hook gradients [2, K] waiting to be reduced and added at the next loss call; a plain
        # attribute, not a buffer, so that DDP's buffer broadcast never overwrites a rank's own
        self._pending: torch.Tensor | None = None

    def make_classifier(self, in_features: int) -> nn.Module:
        layer = super().make_classifier(in_features)
        if self.prior_prob is not None:
            nn.init.constant_(layer.bias, -math.log((1 - self.prior_prob) / self.prior_prob))
        return layer

    def classifier_from_softmax(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-odds against background (``log_odds_against_background``)."""
        return log_odds_against_background(weight, bias)

    @property
    def gradient_ratio(self) -> torch.Tensor:
        """``g_j = pos_j / (neg_j + 1e-10)`` per class (labels 1..K)."""
        return self.pos_grad / (self.neg_grad + 1e-10)

    def class_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive and negative weights ``[K + 1]`` (column 0, the background, is always 1)."""
        ones = torch.ones(self.num_classes + 1, dtype=torch.float64, device=self.pos_grad.device)
        if int(self.num_updates) == 0:
            return ones, ones.clone()
        neg = ones.clone()
        neg[1:] = torch.sigmoid(self.gamma * (self.gradient_ratio - self.mu))
        pos = 1.0 + self.alpha * (1.0 - neg)
        return pos, neg

    def _accumulate(self, pos: torch.Tensor, neg: torch.Tensor) -> None:
        both = _all_reduce_sum(torch.stack([pos, neg]).to(torch.float64))
        self.pos_grad += both[0]
        self.neg_grad += both[1]
        self.num_updates += 1

    def flush_pending(self) -> None:
        """Add the gradients hooks collected since the last ``loss`` call (``loss`` does this first)."""
        if self._pending is not None:
            pending, self._pending = self._pending.to(self.pos_grad.device), None
            self._accumulate(pending[0], pending[1])

    def _hook(self, target: torch.Tensor, scale: float):
        def collect(grad: torch.Tensor) -> None:
            magnitude = grad.detach().abs().to(torch.float64) * scale
            collected = torch.stack([(magnitude * target).sum(dim=0)[1:], (magnitude * (1 - target)).sum(dim=0)[1:]])
            self._pending = collected if self._pending is None else self._pending + collected

        return collect

    def loss_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"cls": ...}``; weights come from the statistics *before* this batch, which it then adds."""
        self._check(logits, labels)
        self.flush_pending()
        num_rois = logits.shape[0]
        if num_rois == 0:
            if self.gradient_source == "analytic":  # every rank must join the all-reduce
                zeros = torch.zeros(self.num_classes, dtype=torch.float64, device=self.pos_grad.device)
                self._accumulate(zeros, zeros)
            return {"cls": logits.sum()}
        target = F.one_hot(labels.long(), self.num_outputs).to(logits.dtype)
        pos_w, neg_w = (w.to(logits.dtype) for w in self.class_weights())
        weight = pos_w[None, :] * target + neg_w[None, :] * (1 - target)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        loss = (bce * weight).sum() / num_rois * self.loss_weight
        if self.gradient_source == "analytic":
            with torch.no_grad():
                magnitude = (torch.sigmoid(logits.detach()) - target).abs() * weight
                self._accumulate((magnitude * target).sum(dim=0)[1:], (magnitude * (1 - target)).sum(dim=0)[1:])
        elif logits.requires_grad and torch.is_grad_enabled():
            logits.register_hook(self._hook(target.detach(), num_rois / self.loss_weight))
        return {"cls": loss}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``[sigmoid(z_0), sigmoid(z_k) * (1 - sigmoid(z_0))]``, background in column 0."""
        scores = torch.sigmoid(logits.float())
        background = scores[:, :1]
        return torch.cat([background, scores[:, 1:] * (1 - background)], dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}, "
            f"gradient_source={self.gradient_source!r}"
        )


class FederatedClassLoss(ClassLoss):
    """Federated sigmoid loss over a per-call class subset (formulas in the module docstring)."""

    name = "federated"
    converts_softmax = True

    def __init__(
        self,
        *,
        num_classes: int,
        image_counts: Sequence[float] | torch.Tensor,
        num_sample_categories: int = 50,
        freq_weight_power: float = 0.5,
        loss_weight: float = 1.0,
        prior_prob: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        """``image_counts``: training images per class, ``K`` values in label order (1..K).

        ``generator``: a CPU ``torch.Generator`` for the class draws (``None``: the global one).
        """
        super().__init__(num_classes=num_classes)
        if int(num_sample_categories) < 1:
            raise ValueError(f"num_sample_categories must be positive, got {num_sample_categories}")
        self.num_sample_categories = int(num_sample_categories)
        self.freq_weight_power = float(freq_weight_power)
        self.loss_weight = float(loss_weight)
        self.prior_prob = float(prior_prob)
        self.generator = generator
        counts = as_counts(image_counts, num_classes=self.num_classes)
        #: drawing weight per class (labels 1..K): ``image_count ** freq_weight_power``
        self.register_buffer("sample_weights", counts.pow(self.freq_weight_power).float())

    def make_classifier(self, in_features: int) -> nn.Module:
        layer = super().make_classifier(in_features)
        nn.init.constant_(layer.bias, -math.log((1 - self.prior_prob) / self.prior_prob))
        return layer

    def classifier_from_softmax(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-odds against background (``log_odds_against_background``)."""
        return log_odds_against_background(weight, bias)

    def sampling_probabilities(self, present: torch.Tensor) -> torch.Tensor:
        """Drawing distribution ``[K + 1]`` (index = label) given the labels already ``present``.

        Zero for the background and the present labels, otherwise proportional to the weights.
        """
        prob = torch.zeros(self.num_classes + 1, dtype=torch.float64)
        prob[1:] = self.sample_weights.detach().cpu().to(torch.float64)
        prob[present.cpu()] = 0.0
        total = prob.sum()
        return prob / total if total > 0 else prob

    def sample_classes(self, labels: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sorted foreground labels (1..K) whose logits this call trains, on ``labels.device``."""
        present = torch.unique(labels.detach().long().cpu())
        needed = self.num_sample_categories - present.numel()
        chosen = present
        if needed > 0:
            prob = self.sampling_probabilities(present)
            drawable = int((prob > 0).sum())
            if drawable > 0:
                draws = torch.multinomial(prob, min(needed, drawable), replacement=False,
                                          generator=generator if generator is not None else self.generator)
                chosen = torch.cat([present, draws])
        chosen = chosen[chosen > 0]
        return torch.sort(chosen).values.to(labels.device)

    def loss_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"cls": ...}``: BCE over the sampled classes' logits / number of boxes."""
        self._check(logits, labels)
        num_rois = logits.shape[0]
        if num_rois == 0:
            return {"cls": logits.sum()}
        target = F.one_hot(labels.long(), self.num_outputs)[:, 1:].to(logits.dtype)
        mask = torch.zeros(self.num_classes, dtype=logits.dtype, device=logits.device)
        mask[self.sample_classes(labels) - 1] = 1.0
        bce = F.binary_cross_entropy_with_logits(logits[:, 1:], target, reduction="none")
        return {"cls": (bce * mask[None, :]).sum() / num_rois * self.loss_weight}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``[1 - max_k sigmoid(z_k), sigmoid(z_1..K)]``, background in column 0."""
        scores = torch.sigmoid(logits[:, 1:].float())
        if scores.shape[0] == 0:
            background = scores.new_zeros((0, 1))
        else:
            background = 1.0 - scores.max(dim=1, keepdim=True).values
        return torch.cat([background, scores], dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, num_sample_categories={self.num_sample_categories}, "
            f"freq_weight_power={self.freq_weight_power}"
        )
