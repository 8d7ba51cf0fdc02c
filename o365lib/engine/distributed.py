"""Multi-process training through ``torchrun``: environment, process group, small collectives.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` in every process; ``setup_distributed`` reads them and joins
the default process group (NCCL on CUDA, gloo on CPU). Without those variables everything runs
as a single process and the collectives below are no-ops, so one code path serves both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, whether it initialised DDP."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables (0, 1, 0 without)."""
    try:
        return (
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError as error:
        raise ValueError(f"bad RANK/WORLD_SIZE/LOCAL_RANK environment variable: {error}") from error


def resolve_device(device: str | torch.device, *, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available; ``"cuda"`` in a multi-process run -> ``cuda:LOCAL_RANK``."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def setup_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group described by the environment (if any) and pick this process's device."""
    rank, world_size, local_rank = env_world()
    resolved = resolve_device(device, local_rank=local_rank)
    if world_size <= 1:
        return DistInfo(device=resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    return DistInfo(rank, world_size, local_rank, resolved, initialized_here)




def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a float tensor over all processes (the tensor itself when single-process)."""
    if not info.distributed:
        return values
    reduced = values.detach().clone().to(info.device)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return (reduced / info.world_size).to(values.device)


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every process's ``obj`` (picklable), in rank order."""
    if not info.distributed:
        return [obj]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them before each forward, so during training only rank 0's count; after the
    last step each rank holds its own update, and this makes every rank end with what rank 0 saved.
    """
    if info.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def barrier(info: DistInfo | None = None) -> None:
    """Wait for every process: of ``info``'s group, or (``None``) of the default group when one is joined."""
    if info is not None:
        if info.distributed:
            dist.barrier()
    elif dist.is_available() and dist.is_initialized():
        dist.barrier()


def env_rank() -> int:
    """This process's rank under torchrun (0 without it)."""
    return env_world()[0]
