"""train(): exact resume, NaN stop, augmentation, init weights, outputs."""

import json

import pytest
import torch
from engine_helpers import ToyDetections, toy_config, toy_model

from o365lib.engine import TrainingDivergedError, flip_horizontal, train
from o365lib.engine.checkpoint import read_checkpoint
from o365lib.engine.train import batch_scale


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    model = toy_model()
    result = train(model, ToyDetections(), config=toy_config(), out_dir=out)
    return model, result, out


def test_run_outputs(uninterrupted):
    model, result, out = uninterrupted
    assert result.finished and result.iterations == result.total_iterations == 6
    assert result.checkpoint == out / "final.pt" and (out / "last.pt").is_file()
    assert result.images_per_s > 0
    losses = json.loads((out / "losses.json").read_text())
    assert [e["iteration"] for e in losses] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "loss_objectness", "loss_cls_s0", "loss_box_s2"} <= set(losses[0])
    assert losses[0]["loss"] == pytest.approx(
        sum(v for k, v in losses[0].items() if k.startswith("loss_")), rel=1e-5
    )
    # warm-up 2 steps from lr * 0.001, then 0.01 until the drop at 50% (iteration 3)
    assert [e["lr"] for e in losses] == pytest.approx([1e-5, 0.005005, 0.01, 0.001, 0.001, 0.001])
    final = read_checkpoint(out / "final.pt")
    assert final["iteration"] == 6 and final["finished"] and "optimizer" not in final
    assert model.transform.min_size == (64,)  # multi-scale training restored the model's size


def test_resume_after_stop_matches_uninterrupted(uninterrupted, tmp_path):
    reference = uninterrupted[0]
    model = toy_model()
    first = train(model, ToyDetections(), config=toy_config(max_iterations_this_call=3), out_dir=tmp_path)
    assert not first.finished and first.iterations == 3 and first.checkpoint == tmp_path / "last.pt"
    assert not _same_weights(model, reference)
    resumed_model = toy_model(seed=99)  # a fresh process would build a differently initialised model
    second = train(resumed_model, ToyDetections(), config=toy_config(), out_dir=tmp_path)
    assert second.finished and second.iterations == 6
    assert _same_weights(resumed_model, reference)
    assert json.loads((tmp_path / "losses.json").read_text()) == json.loads(
        (uninterrupted[2] / "losses.json").read_text()
    )


class _CrashAt(ToyDetections):
    """Raises when the ``crash_after``-th item is requested (simulates a killed run)."""

    def __init__(self, crash_after):
        super().__init__()
        self.calls, self.crash_after = 0, crash_after

    def __getitem__(self, index):
        self.calls += 1
        if self.calls > self.crash_after:
            raise RuntimeError("injected crash")
        return super().__getitem__(index)


def test_resume_after_crash_matches_uninterrupted(uninterrupted, tmp_path):
    with pytest.raises(RuntimeError, match="injected crash"):
        train(
            toy_model(), _CrashAt(crash_after=2 * 5), config=toy_config(), out_dir=tmp_path
        )  # dies in step 6
    assert read_checkpoint(tmp_path / "last.pt")["iteration"] == 4  # checkpoint_every=2
    model = toy_model(seed=5)
    train(model, ToyDetections(), config=toy_config(), out_dir=tmp_path)
    assert _same_weights(model, uninterrupted[0])


def test_finished_run_returns_at_once_and_config_change_is_refused(uninterrupted):
    _, _, out = uninterrupted
    again = train(toy_model(), ToyDetections(), config=toy_config(), out_dir=out)
    assert again.finished and again.seconds == 0.0 and again.iterations == 6
    with pytest.raises(
        ValueError, match=r"last\.pt was written with a different training config \(fields \['lr'\]"
    ):
        train(toy_model(), ToyDetections(), config=toy_config(lr=0.02), out_dir=out)


def test_fresh_run_removes_an_older_final_checkpoint(tmp_path):
    (tmp_path / "final.pt").write_bytes(b"from an older run")
    config = toy_config(max_iterations_this_call=1)
    result = train(toy_model(), ToyDetections(), config=config, out_dir=tmp_path, resume=False)
    assert not result.finished and not (tmp_path / "final.pt").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # uniform sampler, seed 3: the NaN image is drawn in step 4 (after the checkpoint at 2)
    from o365lib.longtail import UniformSampler

    order = UniformSampler(16, seed=3).epoch_indices(0)
    dataset = ToyDetections(nan_at=order[6])
    with pytest.raises(
        TrainingDivergedError,
        match=r"non-finite loss at iteration 4 \(loss=nan.*last good checkpoint: .*last\.pt",
    ):
        train(toy_model(), dataset, config=toy_config(), out_dir=tmp_path)
    checkpoint = read_checkpoint(tmp_path / "last.pt")
    assert checkpoint["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())
    assert [e["iteration"] for e in json.loads((tmp_path / "losses.json").read_text())] == [1, 2, 3]
    assert not (tmp_path / "final.pt").exists()




def test_augmentation_is_a_function_of_seed_and_iteration():
    config = toy_config(scales=(48, 56, 64))
    scales = [batch_scale(config, i) for i in range(30)]
    assert scales == [batch_scale(config, i) for i in range(30)]
    assert set(scales) == {48, 56, 64}
    assert batch_scale(toy_config(scales=()), 0) is None
    image = torch.arange(12.0).reshape(1, 3, 4).expand(3, 3, 4)
    flipped, target = flip_horizontal(
        image, {"boxes": torch.tensor([[0.0, 1.0, 1.0, 3.0]]), "labels": torch.tensor([1])}
    )
    assert target["boxes"].tolist() == [[3.0, 1.0, 4.0, 3.0]]
    assert flipped[0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]


class _Exploding(torch.nn.Module):
    """The toy model, whose losses jump by 1e4 (finite) from its ``from_call``-th forward on."""

    def __init__(self, model, from_call: int):
        super().__init__()
        self.model, self.from_call, self.calls = model, from_call, 0
        self.transform = model.transform

    def forward(self, images, targets=None):
        self.calls += 1
        losses = self.model(images, targets)
        factor = 1e4 if self.calls >= self.from_call else 1.0
        return {k: v * factor for k, v in losses.items()}


def test_exploding_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("o365lib.engine.train"), "EXPLOSION_MIN_STEPS", 3)
    with pytest.raises(TrainingDivergedError, match=r"exploded to more than 100x the running median at iteration 5"):
        train(_Exploding(toy_model(), from_call=5), ToyDetections(), config=toy_config(iterations=8),
              out_dir=tmp_path)
    assert read_checkpoint(tmp_path / "last.pt")["iteration"] == 4
    assert not (tmp_path / "final.pt").exists()
