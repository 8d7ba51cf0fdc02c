"""The command line: check-pairs, the explicit train command table (without training anything)."""

from __future__ import annotations

import pytest

from o365lib.book.__main__ import TRAIN_COMMANDS, main


def test_check_pairs_command_passes_on_the_repository(capsys):
    assert main(["check-pairs"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_train_list_names_every_command(capsys):
    assert main(["train", "--what", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TRAIN_COMMANDS)
    assert {"baseline", "expert", "resampled", "tiny"} <= set(TRAIN_COMMANDS)


def test_train_unknown_what_lists_the_known(tmp_project):
    with pytest.raises(SystemExit, match=r"unknown --what 'nope'; known: \[.*'baseline'"):
        main(["train", "--profile", "smoke", "--what", "nope"])


def test_train_expert_needs_classes(tmp_project):
    with pytest.raises(SystemExit, match="needs --classes"):
        main(["train", "--profile", "smoke", "--what", "expert"])
