"""o365lib.book.present.comparisons: paired effects over random seeds, Student-t intervals and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from o365lib.book.present.comparisons import (
    Effect,
    comparison_table,
    effects_table,
    fmt,
    interval_text,
    interval_verdict,
    mean_std,
    metrics_table,
    page_table,
    paired_effect,
    seed_summary,
    signed,
    t_quantile,
    trimmed,
)
from o365lib.book.present.talk import TALK, TALK_EFFECTS

# Two-sided 95% (and one 90%) critical values of Student's t, from a printed t table.
T_TABLE_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 30: 2.042, 120: 1.980}


@pytest.mark.parametrize("dof,value", sorted(T_TABLE_975.items()))
def test_t_quantiles_match_the_table(dof, value):
    assert round(t_quantile(0.975, dof), 3) == value
    assert t_quantile(0.025, dof) == pytest.approx(-t_quantile(0.975, dof))


def test_t_quantile_other_levels_and_errors():
    assert round(t_quantile(0.95, 4), 3) == 2.132  # 90% two-sided, 4 dof
    assert round(t_quantile(0.995, 2), 3) == 9.925
    assert t_quantile(0.5, 7) == 0.0
    assert abs(t_quantile(0.975, 100000) - 1.960) < 1e-3  # the normal limit
    for bad in ((0.0, 3), (1.0, 3), (0.975, 0), (0.975, 2.5)):
        with pytest.raises(ValueError):
            t_quantile(*bad)


def test_seed_summary():
    assert seed_summary([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)  # sample std, ddof=1
    mean, std, n = seed_summary([4.0])
    assert (mean, n) == (4.0, 1) and math.isnan(std)
    assert seed_summary([])[2] == 0
    with pytest.raises(ValueError, match="value 1 is None"):
        seed_summary([1.0, None])


def test_paired_effect_by_hand():
    # diffs 1.0, 1.5, 1.2: mean 1.23333, sd 0.251661, half width 4.302653 * 0.251661 / sqrt(3) = 0.625161
    e = paired_effect([10.0, 11.0, 12.0], [11.0, 12.5, 13.2], talk_effect=0.9)
    assert isinstance(e, Effect) and e.n == 3
    assert (e.mean_a, e.std_a) == (11.0, 1.0)
    assert e.diff_mean == pytest.approx(1.233333, abs=1e-6) and e.diff_std == pytest.approx(0.251661, abs=1e-6)
    assert e.ci_low == pytest.approx(0.608172, abs=1e-6) and e.ci_high == pytest.approx(1.858494, abs=1e-6)
    assert e.verdict == "reproduced" and e.diffs == pytest.approx((1.0, 1.5, 1.2))
    assert e.summary() == {"values": list(e.diffs), "ci": [e.ci_low, e.ci_high], "verdict": "reproduced"}


def test_pairing_removes_the_between_seed_spread():
    # The arms overlap widely (seeds differ by 10 points) but every seed gains 0.5 to 0.7.
    control, treated = [10.0, 20.0, 30.0, 40.0], [10.5, 20.7, 30.6, 40.5]
    e = paired_effect(control, treated, talk_effect=0.6)
    assert e.std_a > 10 and e.ci_low > 0 and e.verdict == "reproduced"
    assert paired_effect(control, treated, talk_effect=-0.3).verdict == "reversed"


def test_mappings_pair_by_seed():
    a = {0: 10.0, 1: 20.0, 2: 30.0}
    b = {2: 31.0, 0: 11.0, 1: 21.0}  # other order: still paired by seed
    e = paired_effect(a, b, talk_effect=None)
    assert e.diffs == (1.0, 1.0, 1.0) and e.seeds == (0, 1, 2)
    assert (e.ci_low, e.ci_high) == (1.0, 1.0) and e.verdict == "higher"
    with pytest.raises(ValueError, match="different seeds"):
        paired_effect({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0}, talk_effect=1.0)
    with pytest.raises(TypeError, match="both"):
        paired_effect(a, [1.0, 2.0, 3.0], talk_effect=1.0)


def test_verdict_cases():
    assert paired_effect([1.0, 2.0, 3.0], [1.1, 1.9, 3.1], talk_effect=1.4).verdict == "inconclusive"
    one = paired_effect([1.0], [5.0], talk_effect=1.4)
    assert one.verdict == "inconclusive (1 seed)" and math.isnan(one.ci_low) and one.diff_mean == 4.0
    assert paired_effect([], [], talk_effect=1.4).verdict == "not measured"
    assert paired_effect([1.0, 2.0], [0.0, 1.0], talk_effect=None).verdict == "lower"
    assert paired_effect([1.0, 2.0], [2.0, 3.0], talk_effect=0.0).verdict == "contradicted"
    assert paired_effect([1.0, 2.0, 3.0], [1.1, 1.9, 3.1], talk_effect=0.0).verdict == "inconclusive"
    same = paired_effect([1.0, 2.0], [1.0, 2.0], talk_effect=0.5)  # zero spread, zero effect
    assert (same.ci_low, same.ci_high, same.verdict) == (0.0, 0.0, "inconclusive")
    # The talk's head-downsampling overall effect is a small loss: a clear loss of ours reproduces it.
    down = paired_effect([31.0, 30.0, 32.0], [30.5, 29.6, 31.4], talk_effect=TALK_EFFECTS["resample_overall"])
    assert TALK_EFFECTS["resample_overall"] == -0.3 and down.verdict == "reproduced"


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="one value per seed each, got 3 and 2"):
        paired_effect([1.0, 2.0, 3.0], [1.0, 2.0], talk_effect=1.0)
    with pytest.raises(ValueError, match="ours_b: value 1 is nan"):
        paired_effect([1.0, 2.0], [1.0, float("nan")], talk_effect=1.0)
    with pytest.raises(ValueError, match="confidence"):
        paired_effect([1.0, 2.0], [1.0, 2.0], talk_effect=1.0, confidence=95)


def test_verdict_never_contradicts_its_interval():
    """Property over random inputs: the verdict is exactly what the interval and the talk's sign say."""
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(3000):
        n = int(rng.integers(1, 7))
        base = rng.normal(20, 5, size=n)
        treated = base + rng.normal(rng.normal(0, 1), rng.uniform(0.01, 2), size=n)
        talk = [None, 0.0, float(rng.normal(0, 2))][int(rng.integers(0, 3))]
        e = paired_effect(base.tolist(), treated.tolist(), talk_effect=talk,
                          confidence=float(rng.choice([0.8, 0.9, 0.95, 0.99])))
        seen.add(e.verdict)
        if n == 1:
            assert e.verdict == "inconclusive (1 seed)"
            continue
        # independent check of the interval: mean +- t * sd / sqrt(n)
        d = treated - base
        half = t_quantile(1 - (1 - e.confidence) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
        assert e.ci_low == pytest.approx(d.mean() - half) and e.ci_high == pytest.approx(d.mean() + half)
        above, below = e.ci_low > 0, e.ci_high < 0
        if talk is None:
            expected = "higher" if above else "lower" if below else "inconclusive"
        elif talk == 0:
            expected = "contradicted" if above or below else "inconclusive"
        else:
            talk_side = (talk > 0 and above) or (talk < 0 and below)
            other_side = (talk > 0 and below) or (talk < 0 and above)
            expected = "reproduced" if talk_side else "reversed" if other_side else "inconclusive"
        assert e.verdict == expected
        assert interval_verdict(e.ci_low, e.ci_high, talk_effect=talk, n=n) == expected
    assert {"reproduced", "reversed", "inconclusive", "higher", "lower", "contradicted"} <= seen


def test_talk_effects_are_the_talks_differences_to_one_decimal():
    """Effects computed from the quoted numbers (18.4 -> 29.5, 29.6 -> 29.9 -> 30.7, 18.4 -> 23.3, 31.3 -> 31.0)."""
    assert TALK_EFFECTS["expert_tail"] == 11.1 and TALK_EFFECTS["resample_tail"] == 4.9
    assert TALK_EFFECTS["resample_overall"] == -0.3
    assert (TALK_EFFECTS["merge_first_expert"], TALK_EFFECTS["merge_second_expert"]) == (0.3, 0.8)


def test_talk_numbers_agree_with_each_other():
    """The talk quotes some numbers twice, and counts within a range; a typo in one breaks these."""
    assert TALK["resample_tail"][0] == TALK["expert_tail_before"]  # the same baseline tail AP
    assert TALK["tail_zero_ap"] <= TALK["tail_num_classes"] == 365 - 301 + 1
    assert TALK["expert_classes_improved"] <= TALK["tail_num_classes"]
    assert TALK["resample_overall"][0] == TALK["tricks_start"]
    ratio = TALK["objects365_max_instances"] / TALK["objects365_min_instances"]
    assert round(ratio) == 75746 and round(TALK["coco_max_instances"] / TALK["coco_min_instances"]) == 1326


def test_text_helpers():
    assert (fmt(16), fmt(16.0), fmt(None), fmt(float("nan")), fmt(-0.04)) == ("16", "16.0", "-", "-", "0.0")
    # an interval end that rounds to zero keeps its sign: the verdict depends on it
    assert interval_text(-0.0014, 3.24) == "[-0.0014, +3.2]"
    assert interval_text(0.0, 1.0) == "[0.0, +1.0]" and interval_text(0.3, 2.06) == "[+0.3, +2.1]"
    assert (signed(1.23), signed(-0.3), signed(0.0), signed(None)) == ("+1.2", "-0.3", "0.0", "-")
    assert mean_std([1.0, 2.0, 3.0]) == "2.0 ± 1.0" and mean_std([7]) == "7" and mean_std(None) == "-"
    assert mean_std({"mean": 2.0, "std": 0.5, "n": 3}) == "2.0 ± 0.5"
    assert mean_std({"values": [1.0, 3.0]}, digits=2) == "2.00 ± 1.41"


def test_effects_table_shows_counts_as_ints_and_missing_as_dash():
    e = paired_effect([10.0, 11.0, 12.0], [11.0, 12.5, 13.2], talk_effect=0.9)
    table = effects_table([("baseline", [10.0, 11.0, 12.0]), ("+ trick", e),
                           ("+ one seed", paired_effect([1.0], [2.0], talk_effect=None))])
    assert list(table.columns) == ["ours (mean ± std)", "ours Δ", "95% CI", "talk Δ", "verdict", "seeds"]
    assert table.loc["baseline"].tolist() == ["11.0 ± 1.0", "-", "-", "-", "-", 3]
    assert table.loc["+ trick"].tolist() == ["12.2 ± 1.1", "+1.2", "[+0.6, +1.9]", "+0.9", "reproduced", 3]
    assert table.loc["+ one seed"].tolist() == ["2.0", "+1.0", "-", "-", "inconclusive (1 seed)", 1]
    assert "NaN" not in table.to_string() and "nan" not in table.to_string()
    assert list(effects_table({"x": paired_effect([1.0, 2.0], [2.0, 3.1], talk_effect=1.0, confidence=0.9)}).columns)[2] \
        == "90% CI"


def test_comparison_table():
    table = comparison_table([("mAP", [27.0, 28.0, 29.0], 29.5), ("zero-AP classes", 12, 39), ("other", None, None)])
    assert table.loc["mAP"].tolist() == ["28.0 ± 1.0", "29.5", 3]
    assert table.loc["zero-AP classes"].tolist() == ["12", "39", 1]
    assert table.loc["other"].tolist() == ["-", "-", "-"]
    partly = comparison_table([("fixed AP", [1.0, None, 3.0, float("nan")], None), ("none", [None, None], 2)])
    assert partly.loc["fixed AP"].tolist() == ["2.0 ± 1.4", "-", 2]  # missing seeds left out, and not counted
    assert partly.loc["none"].tolist() == ["-", "2", 0]


def test_metrics_table_trims_evaluate_outputs():
    def ev(m, tail, zero):
        return {"mAP": m, "AP50": 99.0, "ranges": {"1-2": {"mAP": m + 1, "zero_ap": 0}, "3-5": {"mAP": tail, "zero_ap": zero}}}

    table = metrics_table({"uniform": [ev(10.0, 2.0, 3), ev(12.0, 4.0, 5)], "rfs": [ev(11.0, 5.0, 1)]})
    assert list(table.columns) == ["mAP", "AP 1-2", "AP 3-5", "zero-AP 3-5", "seeds"]
    assert table.loc["uniform"].tolist() == ["11.0 ± 1.4", "12.0 ± 1.4", "3.0 ± 1.4", "4.0 ± 1.4", 2]
    assert table.loc["rfs"].tolist() == ["11.0", "12.0", "5.0", "1", 1]


def test_shown_and_trimmed():
    frame = pd.DataFrame({"ap": [6.9, float("nan")], "classes": [16.0, float("nan")],
                          "n": pd.array([3, None], dtype="Int64"), "word": ["a", None]}, index=["x", "y"])
    table = page_table(frame, integer_columns=["classes"])
    assert table.loc["x"].tolist() == ["6.90", "16", "3", "a"]
    assert table.loc["y"].tolist() == ["-", "-", "-", "-"]
    with pytest.raises(KeyError, match="integer_columns"):
        page_table(frame, integer_columns=["nope"])
    assert list(trimmed(frame, columns=["n", "ap"], rename={"ap": "AP"}).columns) == ["n", "AP"]
    with pytest.raises(KeyError, match=r"\['zz'\]"):
        trimmed(frame, columns=["zz"])


def test_effects_records_are_json_ready():
    import json

    from o365lib.book.present.comparisons import effects_records
    from o365lib.io import finite

    records = effects_records([("a", paired_effect({1: 1.0, 2: 2.0}, {1: 2.0, 2: 2.5}, talk_effect=0.6)),
                               ("b", paired_effect([1.0], [2.0], talk_effect=None))])
    assert records[0]["label"] == "a" and records[0]["diffs"] == [1.0, 0.5] and records[0]["seeds"] == [1, 2]
    assert records[0]["talk_effect"] == 0.6 and records[1]["verdict"] == "inconclusive (1 seed)"
    back = json.loads(json.dumps(finite(records), allow_nan=False))
    assert back[1]["ci_low"] is None and back[0]["n"] == 2


def test_page_table_hides_an_index_that_only_numbers_rows():
    frame = pd.DataFrame({"rank": [301, 302, 305], "ap": [0.0, 1.5, 0.0]})
    zero = page_table(frame[frame["ap"] == 0])  # a filter leaves an integer index 0, 2: no meaning
    assert not isinstance(zero, pd.DataFrame)  # a Styler: pandas' own HTML of a frame always shows the index
    html = zero.to_html()
    assert "row_heading" not in html and "301" in html and "305" in html
    named = page_table(frame.set_index("rank"))  # a meaningful index stays a column
    assert isinstance(named, pd.DataFrame) and named.index.name == "rank"
