"""``seed_everything``: one seed for Python's, NumPy's and torch's random generators.

Training seeds with it (``config.seed`` plus the rank on a fresh start), and so does every chapter
of the book at set-up, so that a chapter's numbers repeat run to run.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (every device: CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds the CUDA generators too (torch.cuda.manual_seed_all)
