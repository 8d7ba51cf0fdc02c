"""Chapter 7's room for the new losses: budget curve bookkeeping and the EQLv2 probe's measurements."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from o365lib.book.studies import loss_budget
from o365lib.modeling import build_detector
from o365lib.modeling.losses.sigmoid import EQLv2ClassLoss


def _m(value):
    return {"mAP": value}


def test_budgets_start_at_the_shared_one_and_rows_are_the_fresh_classifiers():
    remedies = SimpleNamespace(losses=["seesaw", "eqlv2", "federated"], classifier_starts=["fresh", "converted"])
    ctx = SimpleNamespace(cfg=SimpleNamespace(resampling=SimpleNamespace(epochs=0.2), remedies=remedies))
    assert loss_budget.curve_budgets(ctx, [2.0, 0.6, 0.2]) == [0.2, 0.6, 2.0]
    assert loss_budget.curve_rows(ctx) == ["softmax CE", "Seesaw", "EQLv2", "Federated"]  # no RFS, no converted


def test_crossings_find_the_first_positive_budget_and_the_first_interval_above_zero():
    curve = {"softmax CE": {0.2: [_m(40.0), _m(41.0), _m(42.0)], 1.0: [_m(44.0), _m(45.0), _m(46.0)],
                            2.0: [_m(46.0), _m(47.0), _m(48.0)]},
             "EQLv2": {0.2: [_m(20.0), _m(22.0), _m(21.0)], 1.0: [_m(44.5), _m(44.0), _m(47.0)],
                       2.0: [_m(49.0), _m(50.0), _m(51.2)]},
             "Seesaw": {0.2: [_m(30.0), _m(31.0), _m(32.0)], 1.0: [_m(40.0), _m(41.0), _m(42.0)],
                        2.0: [_m(45.0), _m(46.0), _m(47.0)]}}
    found = {item["remedy"]: item for item in loss_budget.crossings(curve)}
    assert found["EQLv2"]["first positive"] == 1.0  # +0.17 on average at 1 epoch
    assert found["EQLv2"]["first interval above zero"] == 2.0  # +3.07, every seed above
    assert found["Seesaw"]["first positive"] is None and found["Seesaw"]["first interval above zero"] is None
    assert found["EQLv2"]["effects"][2.0].diff_mean == pytest.approx((3.0 + 3.0 + 3.2) / 3)
    table = loss_budget.crossings_table(list(found.values()))
    assert table.loc["Seesaw", "crosses softmax CE at"] == "not within the curve"
    assert table.loc["EQLv2", "interval above zero from"] == "2 epochs"
    records = loss_budget.crossing_records(list(found.values()))
    assert records[0]["effects"]["0.2"]["n"] == 3


def test_a_remedy_that_falls_back_below_softmax_ce_has_not_crossed_there():
    """Ahead at 1 epoch but behind again at 2: it crosses from no budget; ahead at 1 and 2: from 1."""
    control = {e: [_m(40.0), _m(41.0), _m(42.0)] for e in (0.2, 1.0, 2.0)}
    dips = {0.2: [_m(30.0), _m(31.0), _m(32.0)], 1.0: [_m(45.0), _m(46.0), _m(47.0)],
            2.0: [_m(38.0), _m(39.0), _m(40.0)]}
    stays = {0.2: [_m(45.0), _m(46.0), _m(47.0)], 1.0: [_m(30.0), _m(31.0), _m(32.0)],
             2.0: [_m(45.0), _m(46.0), _m(47.0)]}
    found = {item["remedy"]: item for item in
             loss_budget.crossings({"softmax CE": control, "dips": dips, "stays": stays})}
    assert found["dips"]["first positive"] is None and found["dips"]["first interval above zero"] is None
    assert found["stays"]["first positive"] == 2.0 and found["stays"]["first interval above zero"] == 2.0


def _records(share_early, unseen_early):
    return [{"iteration": 0, "classes seen": 0, "classes unseen": 1.0, "neg weight, unseen": 1.0,
             "neg weight, seen": None, "top-K share, unseen": 1.0, "detections per image": 100.0},
            {"iteration": 5, "classes seen": 50, "classes unseen": unseen_early, "neg weight, unseen": 6.8e-5,
             "neg weight, seen": 0.4, "top-K share, unseen": share_early, "detections per image": 100.0},
            {"iteration": 117, "classes seen": 100, "classes unseen": 0.0, "neg weight, unseen": None,
             "neg weight, seen": 0.5, "top-K share, unseen": 0.0, "detections per image": 100.0}]


def test_probe_sentence_says_whether_unseen_classes_take_more_than_their_share():
    flooding = loss_budget.probe_sentence(_records(0.9, 0.5))
    assert "At iteration 5, 50% of the classes" in flooding and "**90%**" in flooding
    assert "1.8 times" in flooding and "The mechanism holds here" in flooding
    assert "6.8e-05, against 4.0e-01" in flooding  # both weights in one format
    assert "every class had had a positive" in flooding and "One run" in flooding
    fair = loss_budget.probe_sentence(_records(0.3, 0.5))
    assert "does not hold" in fair and "0.6 times" in fair
    near_one = loss_budget.probe_sentence(_records(0.6, 0.5))  # 1.2 times: below the flooding margin
    assert "does not hold" in near_one
    table = loss_budget.probe_table(_records(0.9, 0.5))
    assert list(table.index) == [0, 5, 117] and "share of classes unseen" in table.columns


def test_probe_sentence_reads_the_peak_not_only_the_first_point():
    """Near-uniform scores at the first point (ratio ~1); the flood comes later: the verdict follows the peak."""
    records = _records(0.5, 0.5)
    later = dict(records[1], iteration=40, **{"classes unseen": 0.2, "top-K share, unseen": 0.7,
                                              "neg weight, seen": None})
    text = loss_budget.probe_sentence([records[0], records[1], later, records[2]])
    assert "At iteration 40, 20% of the classes" in text and "3.5 times" in text
    assert "against n/a" in text and "The mechanism holds here" in text


class _Images(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return torch.rand(3, 64, 64, generator=generator), {"image_id": index + 1}


def test_probe_state_measures_weights_and_the_unseen_share_of_detections():
    torch.manual_seed(0)
    model = build_detector(4, backbone="tiny", fpn_channels=16, min_size=64, max_size=64, class_loss="eqlv2")
    losses = [m for m in model.modules() if isinstance(m, EQLv2ClassLoss)]
    assert len(losses) == 3  # one per cascade stage
    for loss in losses:  # class 2 (label 2) had positives in the first stage only; the others none
        loss.num_updates += 1
        loss.neg_grad += 1.0
    losses[0].pos_grad[1] = 0.5
    run = SimpleNamespace(category_ids=(11, 12, 13, 14), label_map=None)
    ctx = SimpleNamespace(cfg=SimpleNamespace(eval=SimpleNamespace(batch_size=2, max_dets=20, score_threshold=0.0)),
                          device="cpu")
    from o365lib.data import LabelMap

    run.label_map = LabelMap(run.category_ids)
    state = loss_budget._probe_state(ctx, model, run, _Images())
    assert state["classes seen"] == 1 and state["classes unseen"] == pytest.approx(0.75)
    unseen_weight = 1 / (1 + math.exp(12.0 * 0.8))  # g = 0: sigmoid(gamma (0 - mu)), about 6.8e-5
    assert state["neg weight, unseen"] == pytest.approx(unseen_weight, rel=1e-6)
    seen_stage_weights = [1 / (1 + math.exp(-12.0 * (0.5 - 0.8))), unseen_weight, unseen_weight]
    assert state["neg weight, seen"] == pytest.approx(sum(seen_stage_weights) / 3, rel=1e-6)
    assert 0.0 <= state["top-K share, unseen"] <= 1.0 and 0 < state["detections per image"] <= 20
