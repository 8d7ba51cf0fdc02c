"""Chapter 6's tiny-track effects: which arm is the control, and where the talk's number applies."""

from __future__ import annotations

import pytest

from o365lib.book.present.talk import TALK_EFFECTS
from o365lib.book.studies.accuracy_tricks import tiny_effects


def _m(value):
    return {"mAP": value}


ROWS = {"coco": [_m(60.0), _m(61.0), _m(62.0)], "full": [_m(65.0), _m(65.0), _m(67.0)],
        "tricks": [_m(66.0), _m(67.0), _m(68.0)], "backbone": [_m(10.0), _m(11.0), _m(12.0)]}


def test_the_full_track_start_is_measured_against_the_coco_start_next_to_the_talk():
    effects = dict(tiny_effects(ROWS))
    full = effects["from the full-track model vs COCO detector start"]
    assert full.diff_mean == pytest.approx(14.0 / 3)  # full minus COCO, paired by seed: +5, +4, +5
    assert full.talk_effect == TALK_EFFECTS["tiny_full_pretrain"]
    assert effects["COCO detector start vs backbone only"].diff_mean == pytest.approx(50.0)
    assert effects["COCO detector start vs backbone only"].talk_effect is None


def test_without_a_coco_start_the_talk_number_is_not_shown_against_a_backbone_start():
    rows = {key: value for key, value in ROWS.items() if key != "coco"}
    effects = dict(tiny_effects(rows))
    full = effects["from the full-track model vs backbone only"]
    assert full.diff_mean == pytest.approx(164.0 / 3) and full.talk_effect is None
    assert len(effects) == 2
