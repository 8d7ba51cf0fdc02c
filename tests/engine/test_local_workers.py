"""``train_local``: one run over 2 local CPU processes (gloo DDP, spawned), equal to what torchrun would do."""

import pytest
import torch
from engine_helpers import ToyDetections, toy_config, toy_model

from o365lib.engine.checkpoint import read_checkpoint
from o365lib.engine.local_workers import train_local

pytestmark = pytest.mark.slow  # spawns processes


def test_two_local_processes_train_and_resume_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    model = toy_model()
    result = train_local(model, ToyDetections(), config=toy_config(iterations=4, checkpoint_every=10),
                         out_dir=whole, processes=2)
    assert result.finished and result.iterations == 4 and result.images_per_s > 0
    assert [e["iteration"] for e in result.losses] == [1, 2, 3, 4]
    last = read_checkpoint(whole / "last.pt")
    assert last["world_size"] == 2 and len(last["rng"]) == 2
    final = read_checkpoint(whole / "final.pt")["model"]
    assert all(torch.equal(final[k], v) for k, v in model.state_dict().items())  # the caller's model is trained
    # stopped after 2 steps and resumed: the same weights as the uninterrupted run
    for _ in range(2):
        partial = train_local(toy_model(), ToyDetections(), out_dir=split, processes=2,
                              config=toy_config(iterations=4, checkpoint_every=10, max_iterations_this_call=2))
    assert partial.finished
    resumed = read_checkpoint(split / "final.pt")["model"]
    assert all(torch.equal(resumed[k], final[k]) for k in final)


def test_a_worker_error_reaches_the_caller(tmp_path):
    with pytest.raises(Exception, match="non-finite loss"):
        train_local(toy_model(), ToyDetections(nan_at=0), config=toy_config(iterations=4), out_dir=tmp_path,
                    processes=2)
    assert not (tmp_path / "final.pt").exists()


def test_one_process_is_a_plain_train_call(tmp_path):
    result = train_local(toy_model(), ToyDetections(), config=toy_config(iterations=2), out_dir=tmp_path, processes=1)
    assert result.finished and read_checkpoint(tmp_path / "last.pt")["world_size"] == 1
    with pytest.raises(ValueError, match="processes"):
        train_local(toy_model(), ToyDetections(), config=toy_config(), out_dir=tmp_path, processes=0)
