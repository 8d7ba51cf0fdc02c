"""DDP through torchrun: 2 CPU processes (gloo) end with identical weights; rank 0 writes the files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from o365lib.engine.checkpoint import read_checkpoint

#: starts subprocesses (torchrun / papermill kernels): minutes, not seconds
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path):
    env = dict(
        os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1"
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        str(Path(__file__).with_name("ddp_worker.py")),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 world 2 iterations 3" in done.stdout and "rank 1 world 2 iterations 3" in done.stdout
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    final = read_checkpoint(tmp_path / "final.pt")["model"]
    assert all(torch.equal(final[k], rank0[k]) for k in rank0)
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["world_size"] == 2 and len(last["rng"]) == 2  # both ranks' RNG states for exact resume
    # every step saw 2 images per rank: the losses are the mean over both ranks
    assert [e["iteration"] for e in json.loads((tmp_path / "losses.json").read_text())] == [1, 2, 3]
