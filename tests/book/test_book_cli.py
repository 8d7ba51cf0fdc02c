"""The command line: check-pairs, the explicit train command table (without training anything)."""

from __future__ import annotations

import pytest

from o365lib.book.__main__ import main
from o365lib.book.routes import TRAIN_COMMANDS


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


def test_train_beyond_needs_a_known_row(tmp_project):
    with pytest.raises(SystemExit, match="needs --row"):
        main(["train", "--profile", "smoke", "--what", "beyond"])


def test_every_chapter_model_route_is_named():
    from o365lib.book.routes import CHAPTER_MODELS

    assert {"02_baseline", "03_experts", "04_resampling", "05_tricks", "06_tiny_track", "07_beyond"} == set(CHAPTER_MODELS)
    assert "beyond" in TRAIN_COMMANDS  # chapter 7's models train outside the notebook (and under torchrun)
