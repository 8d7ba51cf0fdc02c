"""The command line: check-pairs, the train dispatcher (without training anything)."""

from __future__ import annotations

import json

import pytest

from o365lib.book.__main__ import main, trainable_steps


def test_check_pairs_command_passes_on_the_repository(capsys):
    assert main(["check-pairs"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_trainable_steps_are_found_by_signature():
    steps = trainable_steps()
    assert {"baseline", "dataset"} <= set(steps)
    assert "predictions" not in steps and "model" not in steps


def test_train_unknown_what_lists_the_known(tmp_project):
    with pytest.raises(SystemExit, match=r"unknown --what 'nope'; known: \[.*'baseline'"):
        main(["train", "--profile", "smoke", "--what", "nope"])


def test_train_dataset_generates_the_smoke_data(tmp_project, capsys):
    assert main(["train", "--profile", "smoke", "--what", "dataset"]) == 0
    assert "[o365book] dataset:" in capsys.readouterr().out
    assert (tmp_project / "data" / "synthetic" / "smoke" / "manifest.json").is_file()
    record = json.loads((tmp_project / "results" / "smoke" / "train_dataset" / "parameters.json").read_text())
    assert record["chapter"] == "train_dataset"
