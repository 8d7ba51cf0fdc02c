"""Class losses of the box heads: the protocol, Seesaw parity with mmdet 3.3.0, EQLv2 and the
federated loss against re-statements of their equations written here."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from o365lib.modeling.losses import (
    CLASS_LOSSES,
    ClassLoss,
    NormedLinear,
    SeesawClassLoss,
    build_class_loss,
    counts_in_label_order,
    seesaw_columns_from_mmdet,
)
from o365lib.modeling.losses.sigmoid import EQLv2ClassLoss, FederatedClassLoss

K = 7  # foreground classes in the small cases


def _mmdet_seesaw():
    """mmdet 3.3.0's SeesawLoss and NormedLinear (mmdet.models needs mmcv._ext: the test shim)."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.support import mmcv_ext_shim

    mmcv_ext_shim.install()
    from mmdet.models.layers.normed_predictor import NormedLinear as MmdetNormedLinear
    from mmdet.models.losses.seesaw_loss import SeesawLoss

    return SeesawLoss, MmdetNormedLinear


def _skewed_labels(generator: torch.Generator, n: int, num_classes: int) -> torch.Tensor:
    """Labels 0..K with a long tail (0 = background, about half the boxes)."""
    weights = torch.tensor([float(num_classes)] + [2.0 ** -(c / 2) * num_classes for c in range(num_classes)])
    return torch.multinomial(weights, n, replacement=True, generator=generator)


# ----------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_protocol_shapes_gradients_and_empty_input(name):
    torch.manual_seed(0)
    loss_fn = build_class_loss(name, num_classes=K, image_counts=list(range(1, K + 1)) if name == "federated" else None)
    assert isinstance(loss_fn, ClassLoss)
    assert loss_fn.num_outputs == (K + 2 if name == "seesaw" else K + 1)
    classifier = loss_fn.make_classifier(16)
    features = torch.randn(30, 16)
    logits = classifier(features)
    assert logits.shape == (30, loss_fn.num_outputs)
    labels = _skewed_labels(torch.Generator().manual_seed(1), 30, K)
    loss = loss_fn.loss(logits, labels)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert classifier.weight.grad is not None and torch.isfinite(classifier.weight.grad).all()
    probabilities = loss_fn.probabilities(logits.detach())
    assert probabilities.shape == (30, K + 1)
    assert (probabilities >= 0).all() and (probabilities <= 1).all()
    empty = classifier(torch.zeros(0, 16))
    zero = loss_fn.loss(empty, torch.zeros(0, dtype=torch.int64))
    assert float(zero.detach()) == 0.0 and zero.requires_grad
    assert loss_fn.probabilities(empty.detach()).shape == (0, K + 1)
    with pytest.raises(ValueError, match="expects logits"):
        loss_fn.loss(torch.zeros(3, loss_fn.num_outputs + 1), torch.zeros(3, dtype=torch.int64))


def test_softmax_is_cross_entropy_with_background_at_zero():
    logits = torch.randn(12, K + 1, generator=torch.Generator().manual_seed(0))
    labels = _skewed_labels(torch.Generator().manual_seed(1), 12, K)
    loss_fn = build_class_loss(num_classes=K)
    assert torch.equal(loss_fn.loss(logits, labels), F.cross_entropy(logits, labels))
    assert torch.equal(loss_fn.probabilities(logits), F.softmax(logits, dim=-1))


def test_builder_rejects_wrong_names_and_counts():
    with pytest.raises(ValueError, match="unknown class loss"):
        build_class_loss("focal", num_classes=K)
    with pytest.raises(ValueError, match="needs image_counts"):
        build_class_loss("federated", num_classes=K)
    with pytest.raises(ValueError, match="does not use class_counts"):
        build_class_loss("eqlv2", num_classes=K, class_counts=[1] * K)
    with pytest.raises(ValueError, match="does not use image_counts"):
        build_class_loss("seesaw", num_classes=K, image_counts=[1] * K)
    with pytest.raises(ValueError, match="expected 7 per-class counts"):
        build_class_loss("federated", num_classes=K, image_counts=[1, 2])
    with pytest.raises(TypeError, match="label order"):
        build_class_loss("federated", num_classes=2, image_counts={5: 1, 9: 2})
    assert counts_in_label_order({9: 2, 5: 1}, category_ids=[5, 9]) == [1.0, 2.0]
    with pytest.raises(ValueError, match="no count for category ids \\[7\\]"):
        counts_in_label_order({5: 1}, category_ids=[5, 7])


def test_state_dict_carries_running_statistics():
    seesaw = build_class_loss("seesaw", num_classes=K)
    seesaw.loss(torch.randn(20, K + 2), _skewed_labels(torch.Generator().manual_seed(0), 20, K))
    restored = build_class_loss("seesaw", num_classes=K)
    restored.load_state_dict(seesaw.state_dict())
    assert torch.equal(restored.class_counts, seesaw.class_counts) and seesaw.class_counts.sum() == 20
    eql = build_class_loss("eqlv2", num_classes=K)
    eql.loss(torch.randn(20, K + 1), _skewed_labels(torch.Generator().manual_seed(0), 20, K))
    assert set(eql.state_dict()) == {"pos_grad", "neg_grad", "num_updates"}
    restored = build_class_loss("eqlv2", num_classes=K)
    restored.load_state_dict(eql.state_dict())
    assert torch.equal(restored.pos_grad, eql.pos_grad) and int(restored.num_updates) == 1


# ----------------------------------------------------------------------------- Seesaw vs mmdet


def _to_mmdet_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Ours 0 = background, 1..K -> mmdet 0..K-1 classes, K = background."""
    return torch.where(labels == 0, num_classes, labels - 1)


@pytest.mark.parametrize("normalizer", ["rois", "positives"])
def test_seesaw_matches_mmdet_values_gradients_and_counts(normalizer):
    SeesawLoss, _ = _mmdet_seesaw()
    reference = SeesawLoss(use_sigmoid=False, p=0.8, q=2.0, num_classes=K, eps=1e-2,
                           reduction="mean", loss_weight=1.0, return_dict=True)
    ours = SeesawClassLoss(num_classes=K, normalizer=normalizer)
    perm = seesaw_columns_from_mmdet(K)
    assert perm == [K + 1, K] + list(range(K))
    generator = torch.Generator().manual_seed(3)
    saw_mitigation = saw_compensation = False
    for _ in range(5):  # running counts carry over the calls
        n = 48
        mmdet_logits = (2.0 * torch.randn(n, K + 2, generator=generator)).requires_grad_()
        labels = _skewed_labels(generator, n, K)
        mm_labels = _to_mmdet_labels(labels, K)
        # as mmdet's BBoxHead calls it (sample weights 1, avg_factor = sampled boxes), or bare
        kwargs = {"label_weights": torch.ones(n), "avg_factor": float(n)} if normalizer == "rois" else {}
        expected = reference(mmdet_logits, mm_labels, **kwargs)
        (expected["loss_cls_objectness"] + expected["loss_cls_classes"]).backward()

        our_logits = mmdet_logits.detach()[:, perm].clone().requires_grad_()
        positive = labels > 0
        log_weights = ours.seesaw_log_weights(our_logits.detach()[positive, 2:], labels[positive] - 1)
        terms = ours.loss_terms(our_logits, labels)
        (terms["objectness"] + terms["classes"]).backward()

        assert abs(float(terms["objectness"].detach()) - float(expected["loss_cls_objectness"].detach())) < 1e-6
        assert abs(float(terms["classes"].detach()) - float(expected["loss_cls_classes"].detach())) < 1e-6
        torch.testing.assert_close(our_logits.grad, mmdet_logits.grad[:, perm], rtol=0, atol=1e-6)
        assert torch.equal(ours.class_counts[1:].float(), reference.cum_samples[:K])
        assert float(ours.class_counts[0]) == float(reference.cum_samples[K])
        # counts before this call's update were used for log_weights above: only check it is active
        saw_mitigation |= bool((log_weights < 0).any())
        saw_compensation |= bool((log_weights > 0).any())
    assert saw_compensation and saw_mitigation

    # scores: mmdet's get_activation returns [classes 0..K-1, background]
    logits = torch.randn(9, K + 2, generator=generator)
    activation = reference.get_activation(logits)
    ours_scores = ours.probabilities(logits[:, perm])
    torch.testing.assert_close(ours_scores, torch.cat([activation[:, K:], activation[:, :K]], dim=1))
    torch.testing.assert_close(ours_scores.sum(dim=1), torch.ones(9))


def test_seesaw_without_positives_matches_mmdet():
    SeesawLoss, _ = _mmdet_seesaw()
    reference = SeesawLoss(num_classes=K)
    ours = SeesawClassLoss(num_classes=K)
    logits = torch.randn(6, K + 2)
    expected = reference(logits, torch.full((6,), K), label_weights=torch.ones(6), avg_factor=6.0)
    terms = ours.loss_terms(logits[:, seesaw_columns_from_mmdet(K)], torch.zeros(6, dtype=torch.int64))
    assert float(terms["classes"].detach()) == 0.0 == float(expected["loss_cls_classes"].detach())
    assert abs(float(terms["objectness"].detach()) - float(expected["loss_cls_objectness"].detach())) < 1e-6


def test_normed_linear_matches_mmdet():
    _, MmdetNormedLinear = _mmdet_seesaw()
    torch.manual_seed(0)
    reference = MmdetNormedLinear(16, K + 2, tempearture=20)
    with torch.no_grad():
        reference.bias.copy_(torch.randn(K + 2))
    perm = seesaw_columns_from_mmdet(K)
    ours = SeesawClassLoss(num_classes=K).make_classifier(16)
    assert isinstance(ours, NormedLinear) and ours.temperature == 20.0
    with torch.no_grad():
        ours.weight.copy_(reference.weight[perm])
        ours.bias.copy_(reference.bias[perm])
    x = torch.randn(5, 16)
    torch.testing.assert_close(ours(x), reference(x)[:, perm], rtol=0, atol=1e-6)
    # a cosine classifier: |logit - bias| <= temperature
    assert ((ours(x) - ours.bias).abs() <= 20.0 + 1e-4).all()


def test_seesaw_initial_counts_are_optional():
    loss_fn = build_class_loss("seesaw", num_classes=3, class_counts=[5, 0, 2])
    assert loss_fn.class_counts.tolist() == [0.0, 5.0, 0.0, 2.0]


# ----------------------------------------------------------------------------- EQLv2


class _EQLv2ByHand:
    """EQLv2's equations, written out per class with Python floats (float64)."""

    def __init__(self, num_classes, gamma=12.0, mu=0.8, alpha=4.0):
        self.k, self.gamma, self.mu, self.alpha = num_classes, gamma, mu, alpha
        self.pos = [0.0] * num_classes
        self.neg = [0.0] * num_classes
        self.started = False

    def weights(self, column):
        """(positive weight, negative weight) of logit column 0..K (0 = background)."""
        if column == 0 or not self.started:
            return 1.0, 1.0
        g = self.pos[column - 1] / (self.neg[column - 1] + 1e-10)
        neg = 1.0 / (1.0 + math.exp(-self.gamma * (g - self.mu)))
        return 1.0 + self.alpha * (1.0 - neg), neg

    def step(self, logits, labels):
        """Loss and d loss / d logits for one batch; then the batch's gradients are accumulated."""
        n = len(labels)
        loss, grad = 0.0, [[0.0] * (self.k + 1) for _ in range(n)]
        weights = [self.weights(c) for c in range(self.k + 1)]
        for i in range(n):
            for c in range(self.k + 1):
                z, y = logits[i][c], 1.0 if labels[i] == c else 0.0
                prob = 1.0 / (1.0 + math.exp(-z))
                w = weights[c][0] if y else weights[c][1]
                loss += w * -(y * math.log(prob) + (1 - y) * math.log(1 - prob))
                grad[i][c] = w * (prob - y) / n
        for i in range(n):
            for c in range(1, self.k + 1):
                if labels[i] == c:
                    self.pos[c - 1] += abs(grad[i][c]) * n
                else:
                    self.neg[c - 1] += abs(grad[i][c]) * n
        self.started = True
        return loss / n, grad


def test_eqlv2_matches_the_equations_over_iterations():
    k, n = 4, 24
    by_hand = _EQLv2ByHand(k)
    analytic = EQLv2ClassLoss(num_classes=k)
    hooked = EQLv2ClassLoss(num_classes=k, gradient_source="hook")
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        logits = torch.randn(n, k + 1, generator=generator, dtype=torch.float64) - 1.0
        labels = _skewed_labels(generator, n, k)
        expected_loss, expected_grad = by_hand.step(logits.tolist(), labels.tolist())
        for loss_fn in (analytic, hooked):
            leaf = logits.clone().requires_grad_()
            loss = loss_fn.loss(leaf, labels)
            loss.backward()
            assert abs(float(loss.detach()) - expected_loss) < 1e-12
            torch.testing.assert_close(leaf.grad, torch.tensor(expected_grad, dtype=torch.float64),
                                       rtol=0, atol=1e-12)
    hooked.flush_pending()
    for loss_fn in (analytic, hooked):
        torch.testing.assert_close(loss_fn.pos_grad, torch.tensor(by_hand.pos, dtype=torch.float64))
        torch.testing.assert_close(loss_fn.neg_grad, torch.tensor(by_hand.neg, dtype=torch.float64))
        pos_w, neg_w = loss_fn.class_weights()
        for column in range(k + 1):
            assert (float(pos_w[column]), float(neg_w[column])) == pytest.approx(by_hand.weights(column))
    # the weights really moved away from 1 (rare classes: negatives down-weighted, positives up)
    assert float(analytic.class_weights()[1][1:].min()) < 0.5


def test_eqlv2_first_call_weights_are_one_and_scores():
    loss_fn = EQLv2ClassLoss(num_classes=3)
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    target = F.one_hot(labels, 4).float()
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / 5
    torch.testing.assert_close(loss_fn.loss(logits, labels), expected)
    probs = loss_fn.probabilities(logits)
    sig = torch.sigmoid(logits)
    torch.testing.assert_close(probs[:, 0], sig[:, 0])
    torch.testing.assert_close(probs[:, 1:], sig[:, 1:] * (1 - sig[:, :1]))


def _eqlv2_rank(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    loss_fn = EQLv2ClassLoss(num_classes=3)
    generator = torch.Generator().manual_seed(10 + rank)
    loss_fn.loss(torch.randn(6, 4, generator=generator), torch.tensor([0, 1, 2, 3, 1, 0]))
    torch.save({"pos": loss_fn.pos_grad, "neg": loss_fn.neg_grad}, f"{out_file}.{rank}")
    dist.destroy_process_group()


def _single_rank_statistics(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    single = EQLv2ClassLoss(num_classes=3)
    generator = torch.Generator().manual_seed(10 + rank)
    single.loss(torch.randn(6, 4, generator=generator), torch.tensor([0, 1, 2, 3, 1, 0]))
    return single.pos_grad, single.neg_grad


def test_eqlv2_sums_statistics_over_processes(monkeypatch):
    """A stand-in process group of two ranks: rank 1's statistics arrive through ``all_reduce``."""
    import torch.distributed as dist

    own = torch.stack(_single_rank_statistics(0))
    other = torch.stack(_single_rank_statistics(1))
    calls = []

    def all_reduce(tensor, op=None):
        calls.append(op)
        tensor += other

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    loss_fn = EQLv2ClassLoss(num_classes=3)
    generator = torch.Generator().manual_seed(10)
    loss_fn.loss(torch.randn(6, 4, generator=generator), torch.tensor([0, 1, 2, 3, 1, 0]))
    assert calls == [dist.ReduceOp.SUM]
    torch.testing.assert_close(loss_fn.pos_grad, own[0] + other[0])
    torch.testing.assert_close(loss_fn.neg_grad, own[1] + other[1])


@pytest.mark.slow
def test_eqlv2_all_reduces_gradient_statistics(tmp_path):
    """Two real gloo processes (about 30 s on two cores: each process imports torch again)."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "stats")
    mp.spawn(_eqlv2_rank, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    results = [torch.load(f"{out}.{rank}") for rank in range(2)]
    expected_pos = torch.zeros(3, dtype=torch.float64)
    expected_neg = torch.zeros(3, dtype=torch.float64)
    for rank in range(2):  # what each rank alone would have collected
        pos, neg = _single_rank_statistics(rank)
        expected_pos += pos
        expected_neg += neg
    for result in results:
        torch.testing.assert_close(result["pos"], expected_pos)
        torch.testing.assert_close(result["neg"], expected_neg)


# ----------------------------------------------------------------------------- Federated


def test_federated_weights_and_sampling_distribution():
    image_counts = [100, 25, 9, 4, 1, 0]  # label 6 has no training image: never drawn
    loss_fn = FederatedClassLoss(num_classes=6, image_counts=image_counts, num_sample_categories=3)
    assert loss_fn.sample_weights.tolist() == [10.0, 5.0, 3.0, 2.0, 1.0, 0.0]
    present = torch.tensor([0, 2])  # background and label 2 are among the boxes
    prob = loss_fn.sampling_probabilities(present)
    expected = torch.tensor([0.0, 10.0, 0.0, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64) / 16.0
    torch.testing.assert_close(prob, expected)
    # background and label 2 take two of the three places: one draw, distributed as ``prob``
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 2, 2, 0])
    draws = 4000
    hits = torch.zeros(7)
    for _ in range(draws):
        chosen = loss_fn.sample_classes(labels, generator=generator)
        assert len(chosen) == 2 and 2 in chosen.tolist()
        hits[chosen] += 1
    frequency = hits / draws
    frequency[2] = 0.0
    assert (frequency.double() - expected).abs().max() < 0.025


def test_federated_draws_without_replacement():
    loss_fn = FederatedClassLoss(num_classes=4, image_counts=[16, 9, 4, 1], num_sample_categories=3)
    labels = torch.tensor([0, 0, 0])  # only background: two draws among labels 1..4
    weights = {1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}
    total = sum(weights.values())
    inclusion = dict.fromkeys(weights, 0.0)
    for a, b in itertools.permutations(weights, 2):  # ordered draws without replacement
        p = weights[a] / total * weights[b] / (total - weights[a])
        inclusion[a] += p
        inclusion[b] += p
    generator = torch.Generator().manual_seed(1)
    draws = 4000
    counts = dict.fromkeys(weights, 0)
    for _ in range(draws):
        chosen = loss_fn.sample_classes(labels, generator=generator).tolist()
        assert len(chosen) == 2 and len(set(chosen)) == 2
        for c in chosen:
            counts[c] += 1
    for c in weights:
        assert abs(counts[c] / draws - inclusion[c]) < 0.03


def test_federated_small_label_sets_and_many_present_classes():
    few = FederatedClassLoss(num_classes=5, image_counts=[1] * 5)  # 50 wanted, only 5 exist
    assert few.sample_classes(torch.tensor([0, 3])).tolist() == [1, 2, 3, 4, 5]
    many = FederatedClassLoss(num_classes=80, image_counts=[1] * 80, num_sample_categories=4)
    labels = torch.tensor([0, 5, 9, 17, 33, 60])  # 6 present >= 4: no draws, background dropped
    assert many.sample_classes(labels).tolist() == [5, 9, 17, 33, 60]


def _detectron2_style_federated(logits_bg_last, gt_classes, fed_classes):
    """detectron2's sigmoid CE with federated classes; background is the last label (K)."""
    n, k = logits_bg_last.shape[0], logits_bg_last.shape[1] - 1
    target = torch.zeros(n, k + 1, dtype=logits_bg_last.dtype)
    target[torch.arange(n), gt_classes] = 1
    target = target[:, :k]
    loss = F.binary_cross_entropy_with_logits(logits_bg_last[:, :-1], target, reduction="none")
    mask = torch.zeros(k + 1, dtype=logits_bg_last.dtype)
    mask[fed_classes] = 1
    return (loss * mask[:k].view(1, k)).sum() / n


def test_federated_loss_matches_detectron2_formulation():
    k, n = 30, 40
    counts = [float(1 + (i * 37) % 200) for i in range(k)]
    loss_fn = FederatedClassLoss(num_classes=k, image_counts=counts, num_sample_categories=12)
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(n, k + 1, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = _skewed_labels(generator, n, k)
    chosen = loss_fn.sample_classes(labels, generator=torch.Generator().manual_seed(9))
    present = set(labels.tolist())
    assert set(labels[labels > 0].tolist()) <= set(chosen.tolist())
    assert len(chosen) == 12 - (1 if 0 in present else 0)

    loss_fn.generator = torch.Generator().manual_seed(9)  # the same draws inside loss()
    loss = loss_fn.loss(logits, labels)
    loss.backward()
    # detectron2 layout: our column c (1..K) is its column c - 1, background last
    d2_logits = torch.cat([logits.detach()[:, 1:], logits.detach()[:, :1]], dim=1)
    d2_labels = torch.where(labels == 0, k, labels - 1)
    expected = _detectron2_style_federated(d2_logits, d2_labels, chosen - 1)
    assert abs(float(loss.detach()) - float(expected)) < 1e-12
    untouched = [c for c in range(k + 1) if c == 0 or c not in chosen.tolist()]
    assert float(logits.grad[:, untouched].abs().max()) == 0.0
    assert float(logits.grad[:, chosen].abs().min()) > 0.0


def test_federated_classifier_prior_and_scores():
    loss_fn = FederatedClassLoss(num_classes=3, image_counts=[1, 2, 3])
    layer = loss_fn.make_classifier(8)
    torch.testing.assert_close(torch.sigmoid(layer.bias), torch.full((4,), 0.01))
    logits = torch.tensor([[5.0, 0.0, 2.0, -1.0]])
    probs = loss_fn.probabilities(logits)
    sig = torch.sigmoid(torch.tensor([0.0, 2.0, -1.0]))
    torch.testing.assert_close(probs[0, 1:], sig)
    torch.testing.assert_close(probs[0, 0], 1 - sig.max())
