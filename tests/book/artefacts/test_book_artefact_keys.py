"""Artefact keys: a changed setting or file is a new artefact, never a stale reuse."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
import yaml

import o365lib.book
from o365lib.book.artefacts import datasets, keys, models, predictions
from o365lib.modeling.presets import PRESET_CONFIGS


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    """The smoke data set, generated once for this module."""
    from o365lib.data.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("smoke_data") / "smoke", profile="smoke", seed=0)


@pytest.fixture
def coco_project(tmp_project, smoke_data):
    """A profile on user files (copies of the smoke splits), so the test can edit them."""
    files = tmp_project / "files"
    files.mkdir()
    for split in ("train", "val"):
        shutil.copy(getattr(smoke_data, split), files / f"{split}.json")
    raw = yaml.safe_load((tmp_project / "parameters" / "profiles" / "smoke.yaml").read_text())
    raw["model"]["coco_standin"] = None  # generated data only: real data names a COCO detector file instead
    raw["data"] = {"source": "coco", "root": str(files), "train": str(files / "train.json"),
                   "val": str(files / "val.json"), "train_images": str(smoke_data.images),
                   "val_images": str(smoke_data.images), "check_images": "off"}
    raw["name"] = "files"
    (tmp_project / "parameters" / "profiles" / "files.yaml").write_text(yaml.safe_dump(raw))
    return tmp_project


def _ctx(**namespace):
    return o365lib.book.setup_chapter("99_check", profile="files", namespace=namespace, alpha=None, beta=None)


def test_content_hash_follows_the_bytes(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[1]")
    first = keys.content_hash(path)
    path.write_text("[2]")
    assert keys.content_hash(path) != first
    assert keys.key_of({"a": 1, "b": [2]}) == keys.key_of({"b": [2], "a": 1})


def test_an_edited_annotation_file_is_a_new_model(coco_project):
    ctx = _ctx()
    before, _, _, _ = models.plan_model(ctx, "baseline", seed=0)
    assert before.key == models.plan_model(ctx, "baseline", seed=0)[0].key  # stable
    assert before.key != models.plan_model(ctx, "baseline", seed=1)[0].key  # seeds differ
    train = coco_project / "files" / "train.json"
    data = json.loads(train.read_text())
    data["annotations"] = data["annotations"][: len(data["annotations"]) // 10]
    train.write_text(json.dumps(data))
    after, _, _, _ = models.plan_model(_ctx(), "baseline", seed=0)
    assert after.key != before.key
    assert after.key != models.plan_model(_ctx(train__lr=0.5), "baseline", seed=0)[0].key


def test_backbone_weights_are_keyed_by_content_not_path(coco_project, tmp_path):
    """The same weights at another path (a moved checkout, another runner) are the same model."""
    torch.manual_seed(0)
    weights = {"w": torch.randn(4)}
    first, second, other = tmp_path / "a" / "bb.pt", tmp_path / "b" / "bb.pt", tmp_path / "c" / "bb.pt"
    for path, state in ((first, weights), (second, weights), (other, {"w": torch.randn(4)})):
        path.parent.mkdir()
        torch.save(state, path)
    ctx = _ctx()
    key = models.plan_model(ctx, "baseline", seed=0, backbone_weights=first)[0].key
    assert models.plan_model(ctx, "baseline", seed=0, backbone_weights=second)[0].key == key
    assert models.plan_model(ctx, "baseline", seed=0, backbone_weights=other)[0].key != key


def test_a_model_starts_from_the_same_weights_whatever_ran_before(coco_project, monkeypatch):
    """The new layers of a model are drawn from its random seed, not from the process's random state (which
    depends on which models were cached): two runs of one spec after different draws start identical."""
    from types import SimpleNamespace

    starts = []

    def fake_train_local(model, dataset, **_):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return SimpleNamespace(seconds=0.0, images_per_s=0.0, iterations=0)

    monkeypatch.setattr(models, "train_local", fake_train_local)
    ctx = _ctx()
    run, spec, coco, config = models.plan_model(ctx, "baseline", seed=3)
    for noise in (1, 2):
        torch.manual_seed(noise)
        torch.rand(1000)
        models._train_model(ctx, run, spec=spec, coco=coco, config=config, init=None, init_prefixes=(),
                            sampler=None, classifier_start=None)
    assert starts[0].keys() == starts[1].keys()
    assert all(torch.equal(starts[0][k], starts[1][k]) for k in starts[0])
    assert spec["weights_drawn"] == "from the random seed"  # models trained before this rule have other keys


def test_a_changed_detector_preset_is_a_new_model(coco_project, monkeypatch):
    """Preset values (anchors, FPN levels, RoI mapping) are code, not settings: they are keyed too."""
    before = models.plan_model(_ctx(), "baseline", seed=0)[0].key
    monkeypatch.setitem(PRESET_CONFIGS, "tiny", replace(PRESET_CONFIGS["tiny"], box_positive_fraction=0.5))
    assert models.plan_model(_ctx(), "baseline", seed=0)[0].key != before


def _fake_trained(ctx):
    """A planned baseline with random weights saved as its final checkpoint (no training)."""
    run, _, _, _ = models.plan_model(ctx, "baseline", seed=0)
    model = models.build_model(run, load=False)
    run.dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, run.checkpoint)
    return run


def test_eval_settings_give_new_predictions(coco_project):
    ctx = _ctx()
    run = _fake_trained(ctx)
    first = predictions.ensure_predictions(ctx, run, split="val")
    files = set((ctx.profile_dir / "predictions" / run.key).glob("*.json"))
    assert len(files) == 1
    strict = predictions.ensure_predictions(_ctx(eval__score_threshold=0.5), run, split="val")
    assert len(set((ctx.profile_dir / "predictions" / run.key).glob("*.json"))) == 2
    assert all(r["score"] > 0.5 for r in strict) and len(strict) <= len(first)
    predictions.ensure_predictions(_ctx(eval__fixed_ap_max_dets=40, eval__max_dets=20), run, split="val")
    assert len(set((ctx.profile_dir / "predictions" / run.key).glob("*.json"))) == 3


def test_prediction_precision_is_in_the_key_only_when_it_is_not_float32(coco_project):
    ctx = _ctx()
    run = _fake_trained(ctx)
    assert predictions.inference_amp(ctx) == {}  # the smoke profile predicts in float32: keys as before eval.amp
    predictions.ensure_predictions(ctx, run, split="val")
    predictions.ensure_predictions(_ctx(eval__amp=False), run, split="val")
    assert len(set((ctx.profile_dir / "predictions" / run.key).glob("*.json"))) == 1
    predictions.ensure_predictions(_ctx(eval__amp="bf16"), run, split="val")
    assert len(set((ctx.profile_dir / "predictions" / run.key).glob("*.json"))) == 2


def test_categories_come_from_the_model_and_a_foreign_split_is_an_error(coco_project):
    ctx = _ctx()
    run = _fake_trained(ctx)
    results = predictions.ensure_predictions(ctx, run, split="val")
    assert {r["category_id"] for r in results} <= set(run.category_ids)
    val = coco_project / "files" / "val.json"
    data = json.loads(val.read_text())
    data["categories"].append({"id": 9999, "name": "not in train"})
    val.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"val\.json: categories \[9999\].*not classes of model"):
        predictions.ensure_predictions(_ctx(), run, split="val")


def test_a_truncated_checkpoint_is_an_error_naming_it(coco_project):
    ctx = _ctx()
    run = _fake_trained(ctx)
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:100])
    with pytest.raises(ValueError, match=str(run.checkpoint)):
        models.verify_checkpoint(run)


def test_derived_sets_are_keyed_by_their_source_content(coco_project):
    ctx = _ctx()
    a = datasets.derived_set(ctx, "subset", lambda: {"x": 1}, depends={"ranks": [1]})
    b = datasets.derived_set(ctx, "subset", lambda: {"x": 2}, depends={"ranks": [2]})
    assert a != b and json.loads(a.read_text()) == {"x": 1}


def test_lazy_results_keys_follow_content_settings_and_code(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    first = predictions.LazyResults.of_file(path)
    assert first.load()[0]["score"] == 0.5
    path.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.6}]))
    second = predictions.LazyResults.of_file(path)
    assert second.key != first.key

    def derived(inputs, settings, code=(predictions.cap_per_image,)):
        return predictions.LazyResults.derived(list, inputs=inputs, settings=settings, code=code).key

    base = derived([first, [second]], {"merge": "replace"})
    assert base == derived([first, [second]], {"merge": "replace"})
    assert base != derived([second, [first]], {"merge": "replace"})
    assert base != derived([first, [second]], {"merge": "fuse"})
    assert base != derived([first, [second]], {"merge": "replace"}, code=(json.dumps,))


def test_cached_metrics_of_lazy_results_are_found_without_loading_them(coco_project):
    ctx = _ctx()
    run = _fake_trained(ctx)
    lazy = predictions.lazy_predictions(ctx, run, split="val")
    loads = []

    def counted():
        loads.append(1)
        return lazy.load()

    tracked = predictions.LazyResults(key=lazy.key, make=counted)
    metrics = predictions.evaluate_results(ctx, tracked, name="lazy")
    assert loads == [1]
    assert predictions.evaluate_results(ctx, tracked, name="lazy") == metrics and loads == [1]
    # the same detections given as a list are evaluated alike
    assert predictions.evaluate_results(ctx, lazy.load(), name="list")["mAP"] == metrics["mAP"]
