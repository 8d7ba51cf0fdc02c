"""torchrun from a clean start: rank 0 computes and writes every artefact, the other ranks wait and read.

The README's multi-GPU command, on 2 CPU processes (gloo) and the smoke profile, from an empty
results folder and no generated data: it used to crash when rank 1 read ``backbone.pt`` before
rank 0 had written it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_torchrun_baseline_from_an_empty_results_folder(tmp_path):
    raw = yaml.safe_load((ROOT / "parameters" / "profiles" / "smoke.yaml").read_text())
    raw["results_dir"] = str(tmp_path / "results")
    raw["data"]["root"] = str(tmp_path / "data")
    profile = tmp_path / "smoke.yaml"
    profile.write_text(yaml.safe_dump(raw))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "o365lib.book", "train", "--profile", str(profile), "--what", "baseline"]
    env = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    import os

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    finals = list((tmp_path / "results" / "models").glob("baseline-s0-*/final.pt"))
    backbones = list((tmp_path / "results" / "models").glob("pretrained-backbone-*/backbone.pt"))
    assert len(finals) == 1 and len(backbones) == 1
    assert result.stdout.count("[o365book] baseline:") == 2  # both ranks found the same checkpoint
