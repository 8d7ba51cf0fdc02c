"""``train_local``: one training run split over N local CPU processes (DDP over gloo), one thread each.

On a small CPU, one process with two OpenMP threads keeps the second core busy only inside large
kernels: RPN NMS, per-image matching and sampling, box coding and the Python between them run on
one core while the other spins. Two processes with one thread each run all of that in parallel.
Measured on the 2-core machine (``bench/bench_train_cpu.py --recipes``, see ``bench/README.md``):
the default detector trains at 48 img/s in one 2-thread process and at 37 img/s in each of two
1-thread processes at once.

The run is ``o365lib.engine.train`` under ``torch.distributed`` exactly as ``torchrun`` would
start it: each process trains on its shard of every epoch, gradients are averaged by
``DistributedDataParallel``, rank 0 writes ``last.pt`` / ``final.pt``, and a stopped run resumes
bit-exactly with the same number of processes. ``config.batch_size`` stays the batch of one
process, so the global batch is ``batch_size * processes``.

Under ``torchrun`` (already distributed), or with ``processes=1``, it is a plain ``train`` call.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from o365lib.engine.config import TrainConfig, TrainResult
from o365lib.engine.distributed import env_world


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker(rank: int, processes: int, port: int, threads: int, results, model_bytes: bytes, dataset, config,
            out_dir, sampler) -> None:
    """One rank: its own copy of the model, join the gloo group, train, hand rank 0's ``TrainResult`` back."""
    import torch.distributed as dist

    from o365lib.engine.train import train

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(processes),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(threads)
    model = torch.load(io.BytesIO(model_bytes), map_location="cpu", weights_only=False)
    try:
        result = train(model, dataset, config=config, out_dir=out_dir, sampler=sampler, device="cpu", resume=True)
        if rank == 0:  # small enough for the pipe while the parent still waits in join (the losses: from disk)
            results.put(dataclasses.replace(result, losses=[]))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train_local(
    model: torch.nn.Module,
    dataset,
    *,
    config: TrainConfig,
    out_dir: str | Path,
    sampler=None,
    device: str | torch.device = "cpu",
    processes: int = 1,
    threads_per_process: int = 1,
) -> TrainResult:
    """``o365lib.engine.train`` in ``processes`` local CPU processes (see the module docstring).

    Falls back to one in-process ``train`` call for ``processes <= 1``, a non-CPU device, or a
    process that is already part of a ``torchrun`` job. Errors in a worker are raised here with its
    traceback (``torch.multiprocessing.ProcessRaisedException``); ``last.pt`` keeps the last good state.
    """
    from o365lib.engine.train import train

    if processes < 1 or threads_per_process < 1:
        raise ValueError(f"processes and threads_per_process must be >= 1, got {processes}, {threads_per_process}")
    cpu = str(device) == "cpu" or (str(device) == "auto" and not torch.cuda.is_available())
    if processes == 1 or not cpu or env_world()[1] > 1:
        return train(model, dataset, config=config, out_dir=out_dir, sampler=sampler, device=device, resume=True)
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    # the model travels as bytes: torch.multiprocessing would hand every rank the SAME shared-memory
    # parameters, which the ranks would then update over each other
    model_bytes = io.BytesIO()
    torch.save(model, model_bytes)
    mp.start_processes(_worker, args=(processes, _free_port(), threads_per_process, results, model_bytes.getvalue(),
                                      dataset, config, Path(out_dir), sampler),
                       nprocs=processes, join=True, start_method="spawn")
    result = results.get()
    if Path(result.losses_path).is_file():
        result = dataclasses.replace(result, losses=json.loads(Path(result.losses_path).read_text(encoding="utf-8")))
    # the parent's model gets the trained weights, as after an in-process ``train`` call
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    return result
