"""seed_everything: one owner (the engine), used by training and by every chapter's set-up."""

from __future__ import annotations

import importlib
import random

import numpy as np
import torch

from o365lib.book.run import chapter
from o365lib.engine.seeding import seed_everything


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_the_same_seed_gives_the_same_draws_from_every_generator():
    seed_everything(3)
    first = _draws()
    seed_everything(3)
    assert _draws() == first
    seed_everything(4)
    assert all(a != b for a, b in zip(_draws(), first))  # each generator is seeded


def test_large_seeds_reach_numpy_modulo_two_to_the_32():
    seed_everything(2**32 + 5)
    big = _draws()
    np.random.seed(5)
    assert float(np.random.rand()) == big[1]


def test_book_and_training_use_the_engine_s_function():
    assert chapter.seed_everything is seed_everything
    assert importlib.import_module("o365lib.engine.train").seed_everything is seed_everything
