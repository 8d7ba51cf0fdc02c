"""o365lib.book.compare: ours-vs-seed tables and verdicts."""

from o365lib.book.compare import comparison_table, delta_table, effect_verdict


def test_verdicts():
    assert effect_verdict(2.0, 1.4) == "reproduced"
    assert effect_verdict(0.1, 1.4) == "not reproduced (within noise)"
    assert effect_verdict(-1.0, 0.9) == "reversed"
    assert effect_verdict(-0.5, -0.3) == "reproduced"
    assert effect_verdict(None, 0.9) == "not measured"


def test_tables_keep_measured_values():
    table = comparison_table([("mAP", 27.349, 29.5), ("zero-AP", 12, 39)])
    assert table.loc["mAP", "ours"] == 27.3 and table.loc["zero-AP", "seed"] == 39
    deltas = delta_table([("base", 20.0, None, None), ("+ trick", 21.0, 1.0, 0.6)])
    assert deltas.loc["+ trick", "verdict"] == "reproduced"
    assert deltas.loc["base", "verdict"] == "-"


def test_shown_formats_numbers_and_marks_missing_values():
    from o365lib.book.compare import delta_table, shown

    table = shown(delta_table([("base", 6.9, None, None), ("+ trick", 8.66, 1.76, 0.6)]))
    assert table.loc["base"].tolist() == ["6.90", "-", "-", "-"]
    assert table.loc["+ trick"].tolist() == ["8.66", "1.76", "0.60", "reproduced"]
