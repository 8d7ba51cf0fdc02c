"""o365lib.spread: the one rule for the spread over random seeds (sample std; none for one seed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from o365lib.book.present.comparisons import mean_std, seed_summary
from o365lib.book.present.seed_stats import seed_stat
from o365lib.spread import mean_std_n


def test_sample_std_of_several_seeds():
    mean, std, n = mean_std_n([10.0, 12.0, 17.0])
    assert (mean, n) == (13.0, 3)
    assert std == pytest.approx(np.std([10.0, 12.0, 17.0], ddof=1)) and std == pytest.approx(math.sqrt(13.0))


def test_one_seed_has_no_std_anywhere():
    assert math.isnan(mean_std_n([4.0])[1])
    assert math.isnan(seed_summary([4.0])[1])
    assert seed_stat([4.0]) == {"mean": 4.0, "std": None, "n": 1, "values": [4.0]}
    assert mean_std([4.0]) == "4.0" and mean_std(seed_stat([4.0])) == "4.0"


def test_no_seed():
    mean, std, n = mean_std_n([])
    assert n == 0 and math.isnan(mean) and math.isnan(std)


def test_the_regime_sentence_of_one_seed_shows_the_value_alone():
    from types import SimpleNamespace

    from o365lib.book.present.seed_stats import regime_sentence

    ctx = SimpleNamespace(cfg=SimpleNamespace(eval=SimpleNamespace(ranges=["1-150", "301-365"])))
    metrics = {"mAP": 12.34, "ranges": {"1-150": {"mAP": 20.0}, "301-365": {"mAP": 1.5, "zero_ap": 30, "num_classes": 65}}}
    text = regime_sentence(ctx, [metrics])
    assert "**12.3** mAP" in text and "±" not in text


def test_the_regime_sentence_names_a_seed_outside_the_band():
    from types import SimpleNamespace

    from o365lib.book.present.seed_stats import regime_sentence

    ctx = SimpleNamespace(cfg=SimpleNamespace(eval=SimpleNamespace(ranges=["1-150", "301-365"])))

    def seed(zero):
        return {"mAP": 40.0, "ranges": {"1-150": {"mAP": 58.0}, "301-365": {"mAP": 9.0, "zero_ap": zero, "num_classes": 65}}}

    inside = regime_sentence(ctx, [seed(50), seed(52), seed(45)])
    assert "weak but not dead" in inside and "band" not in inside
    text = regime_sentence(ctx, [seed(50), seed(53), seed(45)])  # the mean (49.3, 76%) is inside, seed 1 is not
    assert "weak but not dead" in text
    assert "seed 1 has 53 of 65 (82%)" in text and "seed 0" not in text and "seed 2" not in text
    ctx.seeds = [7, 8, 9]  # the profile's seeds name them
    assert "seed 8 has 53 of 65" in regime_sentence(ctx, [seed(50), seed(53), seed(45)])
