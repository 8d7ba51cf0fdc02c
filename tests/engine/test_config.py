"""TrainConfig: learning-rate schedule, run length, validation."""

import pytest

from o365lib.engine import TrainConfig


def test_warmup_then_step_drops():
    config = TrainConfig(iterations=100, lr=0.1, warmup_iters=10, warmup_factor=0.001, lr_steps=(0.3, 0.8))
    assert config.milestones(100) == [30, 80]
    lrs = {i: config.lr_at(i, total=100) for i in (0, 5, 10, 29, 30, 79, 80, 99)}
    assert lrs == pytest.approx(
        {0: 1e-4, 5: 0.05005, 10: 0.1, 29: 0.1, 30: 0.01, 79: 0.01, 80: 0.001, 99: 0.001}
    )


def test_seed_schedule_in_epochs_and_iteration_steps():
    # the ByteDance talk: lr 0.1 for 6 epochs, 0.01 for 10, 0.001 for 4 -> steps at 30% and 80% of 20 epochs
    config = TrainConfig(epochs=20, lr=0.1, lr_steps=(0.3, 0.8), batch_size=8)
    total = config.total_iterations(epoch_length=800, world_size=1)
    assert total == 2000 and config.milestones(total) == [600, 1600]
    assert TrainConfig(iterations=90, lr_steps=(50, 70)).milestones(90) == [50, 70]


def test_total_iterations_from_fractional_epochs_and_world_size():
    config = TrainConfig(epochs=2.5, batch_size=8)
    assert config.total_iterations(epoch_length=100, world_size=2) == 15  # 6 steps per epoch
    assert TrainConfig(iterations=7).total_iterations(epoch_length=3, world_size=4) == 7
    with pytest.raises(ValueError, match="smaller than one global batch"):
        config.total_iterations(epoch_length=10, world_size=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of epochs / iterations"),
        ({"epochs": 1, "iterations": 5}, "exactly one"),
        ({"iterations": 5, "amp": "fp8"}, "amp must be one of"),
        ({"iterations": 5, "lr_steps": (0.0,)}, "lr_steps must be > 0"),
        ({"iterations": 5, "batch_size": 0}, "batch_size must be >= 1"),
        ({"iterations": 5, "scales": (0,)}, "scales"),
    ],
)
def test_bad_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_fingerprint_ignores_operational_fields():
    a = TrainConfig(iterations=5, checkpoint_every=1, max_iterations_this_call=2, progress=False)
    b = TrainConfig(iterations=5, checkpoint_every=9)
    assert a.fingerprint() == b.fingerprint()
    assert TrainConfig(iterations=6).fingerprint() != b.fingerprint()


def test_a_fraction_of_one_is_the_end_of_the_run_not_iteration_one():
    config = TrainConfig(iterations=100, lr=0.1, warmup_iters=0, lr_steps=(0.5, 1.0))
    assert config.milestones(100) == [50, 100]
    assert config.lr_at(1, total=100) == pytest.approx(0.1)  # no drop at iteration 1
    assert config.lr_at(99, total=100) == pytest.approx(0.01)  # only the 0.5 drop happened
    iterations = TrainConfig(iterations=100, lr=0.1, warmup_iters=0, lr_steps=(1, 60))
    assert iterations.milestones(100) == [1, 60]  # integers stay iteration numbers
