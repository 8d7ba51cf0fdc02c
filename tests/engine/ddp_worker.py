"""Run by test_ddp.py under ``torchrun --nproc_per_node 2``: a few DDP (gloo) steps on CPU.

Each rank starts from a differently initialised model (DDP must broadcast rank 0's weights), trains,
and saves its final weights as ``rank{R}.pt`` next to the run's checkpoints.
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_helpers import ToyDetections, toy_config, toy_model

from o365lib.engine import train


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    model = toy_model(seed=10 + rank)
    result = train(model, ToyDetections(), config=toy_config(iterations=3, checkpoint_every=2), out_dir=out)
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    print(f"rank {rank} world {os.environ['WORLD_SIZE']} iterations {result.iterations}", flush=True)


if __name__ == "__main__":
    main()
