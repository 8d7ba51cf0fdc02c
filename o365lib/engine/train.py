"""``train``: SGD training of a torchvision-style detector, resumable bit-exactly, single or multi-process.

One loop for every setting: CPU or CUDA (optionally mixed precision), one process or DDP under
``torchrun`` (each rank trains on ``sampler.shard(sampler.epoch_indices(epoch), rank, world)``;
gradients are averaged by ``DistributedDataParallel``; only rank 0 writes files).

Everything random is reproducible from the checkpoint: the sampler is a pure function of
``(seed, epoch)``, the augmentation (per-batch scale, per-image flip) of ``(seed, iteration,
rank)``, and the model-side randomness (RPN/RoI sampling) comes from the global RNGs, whose
states are saved with the model. So a run stopped after k steps and resumed ends with the same
weights as an uninterrupted one.

A non-finite loss (or gradient norm) stops training with ``TrainingDivergedError`` naming the
iteration and the loss terms, before the optimizer touches the weights; ``last.pt`` is never
written after that, so it still holds the last good state.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from o365lib.data.dataset import collate_detection
from o365lib.engine.checkpoint import (
    capture_rng_state,
    read_checkpoint,
    restore_rng_state,
    save_atomic,
)
from o365lib.engine.config import TrainConfig, TrainResult
from o365lib.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    setup_distributed,
)
from o365lib.engine.precision import autocast_dtype
from o365lib.engine.seeding import seed_everything
from o365lib.io import write_json


class TrainingDivergedError(RuntimeError):
    """The loss (or gradient norm) became NaN/inf; ``last.pt`` still holds the last good state."""


def parameter_groups(model: nn.Module, *, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed (weights) and non-decayed (biases, norm scales)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def flip_horizontal(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror an image left-right and its xyxy boxes (``x1' = W - x2``, ``x2' = W - x1``)."""
    width = image.shape[-1]
    boxes = target["boxes"]
    flipped = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    return image.flip(-1), {**target, "boxes": flipped}


def _augmentation_rng(seed: int, iteration: int, stream: int) -> np.random.Generator:
    """A generator that depends only on (seed, iteration, stream): 0 = batch scale, 1 + rank = flips."""
    return np.random.default_rng([int(seed), int(iteration), int(stream), 20190717])


def batch_scale(config: TrainConfig, iteration: int) -> int | None:
    """The short side of the batch at ``iteration`` (the same on every rank), None for the model's own."""
    if not config.scales:
        return None
    return config.scales[int(_augmentation_rng(config.seed, iteration, 0).integers(len(config.scales)))]


def _epoch_batches(sampler, epoch: int, info: DistInfo, batch_size: int) -> list[list[int]]:
    indices = sampler.shard(sampler.epoch_indices(epoch), info.rank, info.world_size)
    return [indices[i * batch_size : (i + 1) * batch_size] for i in range(len(indices) // batch_size)]


def _batch_stream(
    dataset, sampler, *, epoch: int, batch: int, info: DistInfo, config: TrainConfig
) -> Iterator:
    """Yield ``(epoch, batch_index, (images, targets))`` from a position onwards, epoch after epoch."""
    while True:
        batches = _epoch_batches(sampler, epoch, info, config.batch_size)
        if not batches:
            raise ValueError(
                f"epoch {epoch} has fewer images per process than one batch of {config.batch_size}"
            )
        remaining = batches[batch:]
        if config.num_workers > 0 and remaining:
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_sampler=remaining,
                collate_fn=collate_detection,
                num_workers=config.num_workers,
                generator=torch.Generator().manual_seed(0),  # keeps the global RNG untouched
            )
            source = iter(loader)
        else:
            source = (collate_detection([dataset[i] for i in indices]) for indices in remaining)
        for offset, loaded in enumerate(source):
            yield epoch, batch + offset, loaded
        epoch, batch = epoch + 1, 0


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``o365lib.engine.precision.autocast_dtype``: CPU bf16 only where it is native)."""
    return autocast_dtype(config.amp, device)


def _normalized(obj):
    return json.loads(json.dumps(obj))


#: A finite loss above this multiple of the running median of recent losses counts as divergence.
EXPLOSION_FACTOR = 100.0
#: How many recent steps the running median looks at, and how many it needs before it judges.
EXPLOSION_WINDOW, EXPLOSION_MIN_STEPS = 50, 20


@dataclass
class _Run:
    """Everything a training call carries between its parts (resume, steps, saves)."""

    core: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: object
    config: TrainConfig
    info: DistInfo
    total: int
    out_dir: Path
    iteration: int = 0
    epoch: int = 0
    batch_index: int = 0
    losses: list = field(default_factory=list)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def final_path(self) -> Path:
        return self.out_dir / "final.pt"

    @property
    def losses_path(self) -> Path:
        return self.out_dir / "losses.json"


def _start(run: _Run, *, resume: bool) -> None:
    """Continue from ``last.pt`` (same config required) or start fresh (seeded)."""
    if resume and run.last_path.is_file():
        checkpoint = read_checkpoint(run.last_path)
        saved, current = _normalized(checkpoint.get("config")), _normalized(run.config.fingerprint())
        if saved != current:
            changed = sorted(k for k in set(saved or {}) | set(current) if (saved or {}).get(k) != current.get(k))
            raise ValueError(
                f"checkpoint {run.last_path} was written with a different training config (fields {changed}); "
                "pass resume=False or use another out_dir"
            )
        run.core.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        if run.scaler is not None and checkpoint.get("scaler"):
            run.scaler.load_state_dict(checkpoint["scaler"])
        run.iteration, run.epoch, run.batch_index = (checkpoint["iteration"], checkpoint["epoch"],
                                                     checkpoint["batch_in_epoch"])
        states = checkpoint["rng"]
        if len(states) == run.info.world_size:
            restore_rng_state(states[run.info.rank])
        else:  # another number of processes: continue with fresh, still deterministic, streams
            seed_everything(run.config.seed + run.info.rank + run.iteration)
        if run.losses_path.is_file():
            run.losses = [e for e in json.loads(run.losses_path.read_text()) if e["iteration"] <= run.iteration]
        return
    if run.info.is_main:  # a fresh run: an older run's final.pt must not pass for this one's
        run.final_path.unlink(missing_ok=True)
    seed_everything(run.config.seed + run.info.rank)


def _save(run: _Run, path: Path, *, finished: bool) -> None:
    """The full training state (every rank's RNGs gathered), and the loss history; rank 0 writes."""
    rng_states = all_gather_objects(capture_rng_state(), run.info)
    if run.info.is_main:
        save_atomic({
            "model": run.core.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "iteration": run.iteration, "total_iterations": run.total, "epoch": run.epoch,
            "batch_in_epoch": run.batch_index, "rng": rng_states, "config": run.config.fingerprint(),
            "world_size": run.info.world_size, "finished": finished,
        }, path)
        write_json(run.losses_path, run.losses, indent=None)


def _save_final(run: _Run) -> None:
    if run.info.is_main:
        save_atomic({"model": run.core.state_dict(), "iteration": run.iteration,
                     "config": run.config.fingerprint(), "finished": True}, run.final_path)


def _check_loss(run: _Run, terms: dict) -> None:
    """Stop on a non-finite loss, or a finite one ``EXPLOSION_FACTOR`` times the running median."""
    if not all(math.isfinite(v) for v in terms.values()):
        _diverged(run.iteration + 1, terms, run.last_path, run.losses, run.losses_path, run.info)
    recent = [e["loss"] for e in run.losses[-EXPLOSION_WINDOW:]]
    if len(recent) >= EXPLOSION_MIN_STEPS:
        median = float(np.median(recent))
        if median > 0 and terms["loss"] > EXPLOSION_FACTOR * median:
            _diverged(run.iteration + 1, {**terms, "running_median": median}, run.last_path, run.losses,
                      run.losses_path, run.info, why=f"exploded to more than {EXPLOSION_FACTOR:g}x the running median")


def _step(run: _Run, network: nn.Module, images, targets, *, autocast, params) -> dict:
    """One optimizer step at ``run.iteration``: augmentation, lr, forward, checks, backward, update."""
    config, info = run.config, run.info
    if config.flip:
        rng = _augmentation_rng(config.seed, run.iteration, 1 + info.rank)
        pairs = [flip_horizontal(im, t) if rng.random() < 0.5 else (im, t) for im, t in zip(images, targets)]
        images, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    transform = getattr(run.core, "transform", None)
    scale = batch_scale(config, run.iteration)
    if transform is not None and scale is not None:
        transform.min_size = (scale,)
    if transform is not None and config.max_size is not None:
        transform.max_size = config.max_size
    lr = config.lr_at(run.iteration, total=run.total)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    images = [im.to(info.device, non_blocking=True) for im in images]
    targets = [{k: v.to(info.device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
    with autocast:
        loss_dict = network(images, targets)
    loss = sum(loss_dict.values())
    values = torch.stack([loss.detach().float(), *(v.detach().float() for v in loss_dict.values())])
    terms = dict(zip(["loss", *loss_dict], (float(v) for v in all_reduce_mean(values.cpu(), info))))
    _check_loss(run, terms)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        loss.backward()
    if config.clip_grad is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(params, config.clip_grad))
        if run.scaler is None and not math.isfinite(norm):
            _diverged(run.iteration + 1, {**terms, "grad_norm": norm}, run.last_path, run.losses,
                      run.losses_path, info)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    return {**terms, "lr": lr}


def train(
    model: nn.Module,
    dataset,
    *,
    config: TrainConfig,
    out_dir: str | Path,
    sampler=None,
    device: str | torch.device = "cpu",
    resume: bool = True,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (items ``(image, target)``), writing to ``out_dir``.

    Files: ``last.pt`` (full state, every ``checkpoint_every`` steps and at the end), ``final.pt``
    (weights + metadata, when the run is complete), ``losses.json`` (one entry per step:
    iteration, loss, each loss term, lr). With ``resume=True`` an existing ``last.pt`` is
    continued (an error names the file and fields if its config differs); a finished run returns
    at once. Initial weights are the model's own (see ``o365lib.modeling.transfer`` to start from
    another model). ``sampler``
    (``epoch_indices``/``shard``) defaults to ``o365lib.longtail.UniformSampler``. Seeds the global
    RNGs from ``config.seed`` (plus the rank) on a fresh start. A non-finite loss, or one that
    explodes past ``EXPLOSION_FACTOR`` times its running median, stops with ``TrainingDivergedError``
    and leaves ``last.pt`` at the last good state.
    """
    info = setup_distributed(device)
    if sampler is None:
        from o365lib.longtail import UniformSampler

        sampler = UniformSampler(len(dataset), seed=config.seed)
    run = _new_run(model, config=config, info=info, out_dir=Path(out_dir), epoch_length=len(sampler))
    _start(run, resume=resume)
    if run.iteration >= run.total and run.final_path.is_file():
        return TrainResult(run.final_path, run.iteration, run.total, 0.0, 0.0, run.losses_path, True, run.losses)
    start = time.perf_counter()
    train_seconds, images_seen = _run_steps(run, dataset, sampler)
    finished = run.iteration >= run.total
    broadcast_buffers(run.core, info)
    _save(run, run.last_path, finished=finished)
    if finished:
        _save_final(run)
    barrier(info)
    return TrainResult(
        checkpoint=run.final_path if finished else run.last_path, iterations=run.iteration,
        total_iterations=run.total, seconds=time.perf_counter() - start,
        images_per_s=images_seen / train_seconds if train_seconds > 0 else 0.0,
        losses_path=run.losses_path, finished=finished, losses=run.losses,
    )


def _new_run(model: nn.Module, *, config: TrainConfig, info: DistInfo, out_dir: Path, epoch_length: int) -> _Run:
    """The model on its device (channels-last if asked), SGD over its parameter groups, the loss scaler."""
    core = model.to(info.device)
    if config.channels_last:
        core = core.to(memory_format=torch.channels_last)  # 4-D weights NHWC: faster oneDNN convolutions
    optimizer = torch.optim.SGD(
        parameter_groups(core, weight_decay=config.weight_decay), lr=config.lr, momentum=config.momentum
    )
    amp_dtype = _amp_dtype(config, info.device)
    return _Run(core=core, optimizer=optimizer, config=config, info=info, out_dir=out_dir,
                scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
                total=config.total_iterations(epoch_length=epoch_length, world_size=info.world_size))


def _run_steps(run: _Run, dataset, sampler) -> tuple[float, int]:
    """Steps from ``run.iteration`` to the end (or this call's budget), checkpointing on the way.

    Returns the seconds spent in steps and the images they saw (all ranks); the model's transform
    sizes are restored afterwards (``_step`` sets them per batch).
    """
    core, config, info = run.core, run.config, run.info
    network = core
    if info.distributed:
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        network = nn.parallel.DistributedDataParallel(core, device_ids=device_ids)
    transform = getattr(core, "transform", None)
    original_sizes = (transform.min_size, transform.max_size) if transform is not None else None
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    amp_dtype = _amp_dtype(config, info.device)
    autocast = (torch.autocast(device_type=info.device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    from o365lib.progress import progress_bar

    progress = progress_bar(total=run.total, initial=run.iteration, desc="train",
                            disable=not (info.is_main and config.progress))
    stream = _batch_stream(dataset, sampler, epoch=run.epoch, batch=run.batch_index, info=info, config=config)
    train_seconds, images_seen, steps = 0.0, 0, 0
    core.train()
    try:
        while run.iteration < run.total:
            if config.max_iterations_this_call is not None and steps >= config.max_iterations_this_call:
                break
            step_start = time.perf_counter()
            run.epoch, run.batch_index, (images, targets) = next(stream)
            terms = _step(run, network, images, targets, autocast=autocast, params=params)
            run.iteration, run.batch_index, steps = run.iteration + 1, run.batch_index + 1, steps + 1
            run.losses.append({"iteration": run.iteration, **terms})
            train_seconds += time.perf_counter() - step_start
            images_seen += len(images) * info.world_size
            progress.update(1)
            if run.iteration % config.log_every == 0 or run.iteration == run.total:
                recent = [e["loss"] for e in run.losses[-config.log_every:]]
                progress.set_postfix(loss=f"{sum(recent) / len(recent):.3f}",
                                     img_s=f"{images_seen / train_seconds:.1f}")
            if run.iteration % config.checkpoint_every == 0 and run.iteration < run.total:
                _save(run, run.last_path, finished=False)
    finally:
        progress.close()
        if original_sizes is not None:
            transform.min_size, transform.max_size = original_sizes
    return train_seconds, images_seen


def _diverged(iteration: int, terms: dict, last_path: Path, losses: list, losses_path: Path, info: DistInfo,
              *, why: str = "non-finite loss"):
    """Stop on a diverging loss: keep ``last.pt`` as it is, save the loss history, explain."""
    if info.is_main:
        write_json(losses_path, losses, indent=None)
    kept = f"last good checkpoint: {last_path}" if last_path.is_file() else "no checkpoint was written yet"
    values = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
    raise TrainingDivergedError(
        f"{why} at iteration {iteration} ({values}); training stopped, {kept}. "
        "Lower the learning rate, lengthen warm-up or clip gradients."
    )
