"""Training configuration, its learning-rate schedule and the result record.

The schedule is a pure function of the iteration (linear warm-up, then step drops), so a resumed
run gets exactly the learning rate the uninterrupted one had, without any scheduler state.
``lr_steps`` floats in (0, 1] are fractions of the run (1.0 is its end, i.e. no drop): the ByteDance
talk's "0.1 for 6 epochs, 0.01 for 10, 0.001 for 4" (20 epochs) is ``epochs=20, lr_steps=(0.3, 0.8),
lr_gamma=0.1``; integers are iteration numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

AMP_MODES = (False, True, "bf16", "fp16")

#: Fields that only change how a run is carried out, not what it computes (ignored on resume checks).
OPERATIONAL_FIELDS = ("checkpoint_every", "log_every", "num_workers", "max_iterations_this_call", "progress")


def _is_fraction(step) -> bool:
    """A float lr step in (0, 1] is a fraction of the run; an integer is an iteration number."""
    return isinstance(step, float) and 0 < step <= 1


@dataclass
class TrainConfig:
    """How to train: set exactly one of ``epochs`` / ``iterations``.

    Attributes:
        epochs: passes over the sampler's (expected) epoch length; may be fractional.
        iterations: total optimizer steps instead of epochs.
        batch_size: images per step and process (DDP: the global batch is ``batch_size * world``).
        lr, momentum, weight_decay: SGD; weight decay is not applied to biases and norm weights.
        warmup_iters, warmup_factor: linear warm-up from ``lr * warmup_factor`` to ``lr``.
        lr_steps, lr_gamma: multiply the lr by ``lr_gamma`` at each step (fractions < 1 or iterations).
        scales: training short sides; each batch uses one, drawn from a seeded RNG (empty: the
            model's own ``transform.min_size``). ``max_size`` caps the long side (None: model's).
        flip: horizontal flip with probability 0.5 per image.
        clip_grad: max gradient L2 norm (None: no clipping).
        amp: mixed precision: True (bf16 where supported, else fp16), "bf16", "fp16" or False.
            On CPU only "bf16" applies (oneDNN bf16 autocast); the others are ignored there.
        channels_last: convolution weights (and so activations) in channels-last memory format.
        checkpoint_every: write ``last.pt`` every N iterations (and always at the end).
        seed: seeds model-side randomness (RPN/RoI sampling), augmentation and the default sampler.
        num_workers: DataLoader worker processes for image decoding (0: in the main process).
        log_every: tqdm postfix refresh interval.
        max_iterations_this_call: stop (with a checkpoint) after this many steps in this call;
            the next call with ``resume=True`` continues. For time-boxed runs and resume tests.
        progress: show a tqdm bar on rank 0.
    """

    epochs: float | None = None
    iterations: int | None = None
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    lr_steps: tuple[float, ...] = (0.67, 0.89)
    lr_gamma: float = 0.1
    scales: tuple[int, ...] = ()
    max_size: int | None = None
    flip: bool = True
    clip_grad: float | None = 10.0
    amp: bool | str = False
    channels_last: bool = False
    checkpoint_every: int = 500
    seed: int = 0
    num_workers: int = 0
    log_every: int = 20
    max_iterations_this_call: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.iterations is None):
            raise ValueError(
                f"TrainConfig: set exactly one of epochs / iterations, got epochs={self.epochs}, "
                f"iterations={self.iterations}"
            )
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"TrainConfig: epochs must be > 0, got {self.epochs}")
        if self.iterations is not None and not int(self.iterations) >= 1:
            raise ValueError(f"TrainConfig: iterations must be >= 1, got {self.iterations}")
        for name in ("batch_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.warmup_factor <= 1 or self.warmup_iters < 0:
            raise ValueError(
                f"TrainConfig: need lr > 0, 0 <= warmup_factor <= 1, warmup_iters >= 0; got lr={self.lr}, "
                f"warmup_factor={self.warmup_factor}, warmup_iters={self.warmup_iters}"
            )
        if any(step <= 0 for step in self.lr_steps):
            raise ValueError(f"TrainConfig: lr_steps must be > 0, got {self.lr_steps}")
        if any(int(s) < 1 for s in self.scales):
            raise ValueError(f"TrainConfig: scales must be positive sizes, got {self.scales}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainConfig: amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"TrainConfig: clip_grad must be > 0 or None, got {self.clip_grad}")
        self.lr_steps = tuple(self.lr_steps)
        self.scales = tuple(int(s) for s in self.scales)

    def total_iterations(self, *, epoch_length: int, world_size: int = 1) -> int:
        """Steps of the whole run: ``iterations``, or ``epochs`` times the steps of one epoch."""
        if self.iterations is not None:
            return int(self.iterations)
        steps_per_epoch = epoch_length // (self.batch_size * world_size)
        if steps_per_epoch < 1:
            raise ValueError(
                f"an epoch of {epoch_length} images is smaller than one global batch "
                f"({self.batch_size} x {world_size} processes)"
            )
        return max(1, round(self.epochs * steps_per_epoch))

    def milestones(self, total: int) -> list[int]:
        """Iterations where the lr drops (fractions resolved against ``total``)."""
        return sorted(round(s * total) if _is_fraction(s) else int(s) for s in self.lr_steps)

    def lr_at(self, iteration: int, *, total: int) -> float:
        """Learning rate of the step that starts after ``iteration`` completed steps (0-based)."""
        drops = sum(iteration >= m for m in self.milestones(total))
        factor = self.lr_gamma**drops
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return self.lr * factor

    def fingerprint(self) -> dict:
        """The fields that define what is computed (compared when resuming)."""
        return {k: v for k, v in asdict(self).items() if k not in OPERATIONAL_FIELDS}


@dataclass
class TrainResult:
    """What ``train`` did.

    ``checkpoint`` is ``final.pt`` when the run finished, else ``last.pt`` (stopped early by
    ``max_iterations_this_call``); ``seconds`` and ``images_per_s`` are for this call only
    (training steps, all processes together).
    """

    checkpoint: Path
    iterations: int
    total_iterations: int
    seconds: float
    images_per_s: float
    losses_path: Path
    finished: bool
    losses: list[dict] = field(default_factory=list, repr=False)

    @property
    def final_loss(self) -> float:
        """Mean total loss over the last (up to) 20 logged iterations (nan if none)."""
        tail = [entry["loss"] for entry in self.losses[-20:]]
        return sum(tail) / len(tail) if tail else math.nan
