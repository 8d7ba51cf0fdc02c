"""Profiles: every shipped profile loads with the one typed schema; errors name the file and the key."""

from __future__ import annotations

import pytest
import yaml

from o365lib.book.config.mapping import ConfigError, field_paths, to_mapping
from o365lib.book.config.profiles import chapter_parameters, deep_merge, load_profile, override_mapping
from o365lib.book.config.schema import Profile

PROFILES = ("smoke", "default", "gpu", "objects365")


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_with_the_schema(name, root):
    profile = load_profile(name, root=root)
    assert isinstance(profile, Profile) and profile.name == name
    assert profile.results_dir == str(root / "results" / name)
    assert profile.eval.ranges == ["1-150", "151-300", "301-365"]


def test_the_talks_recipe_in_the_real_data_profiles(root):
    o365 = load_profile("objects365", root=root)
    # 20 epochs, lr 0.1 for 6 epochs then /10 for 10 then /10 for 4, batch 80
    assert o365.train.epochs == 20 and o365.train.lr == 0.1 and o365.train.batch_size == 80
    assert [round(s * 20) for s in o365.train.lr_steps] == [6, 16]
    assert o365.model.backbone == "resnext101_64x4d" and o365.model.dcn is True
    assert o365.data.source == "coco" and o365.data.train.endswith("objects365_train.json")


def _write(tmp_path, mapping, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(mapping))
    return path


def _raw(root, name="smoke"):
    return yaml.safe_load((root / "parameters" / "profiles" / f"{name}.yaml").read_text())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p["experts"].update(epoch=3), r"experts\.epoch: unknown key.*known keys: .*'epochs'"),
    (lambda p: p["model"].update(pretrian=None), r"model\.pretrian: unknown key"),
    (lambda p: p["train"].update(lr="abc"), r"train\.lr: expected a number, got 'abc'"),
    (lambda p: p["train"].pop("lr"), r"train\.lr: missing"),
    (lambda p: p["train"].update(batch_size=0), r"train\.batch_size: must be >= 1, got 0"),
    (lambda p: p["train"].update(lr_steps=[6, 16]), r"train\.lr_steps(\[0\])?: (expected a number|must be <= 1)"),
    (lambda p: p.update(device="tpu"), r"device: must be one of \['auto', 'cpu', 'cuda'\]"),
    (lambda p: p["experts"].update(iterations=5, epochs=1.0), r"experts\.iterations: set exactly one"),
    (lambda p: p["resampling"].update(samplers=["uniform", "rfs"]), r"resampling\.samplers: unknown sampler"),
    (lambda p: p["model"].update(options={"rpn_pre_nms": 3}), r"model\.options\.rpn_pre_nms: not a build_detector"),
    (lambda p: p["eval"].update(amp="bf61"), r"eval\.amp: must be one of \[False, True, 'bf16', 'fp16'\], got 'bf61'"),
])
def test_validation_names_file_and_key(root, tmp_path, edit, message):
    raw = _raw(root)
    edit(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(path, root=root)
    assert str(path) in str(info.value)


def test_profile_by_path_and_unknown_name(root, tmp_path):
    raw = _raw(root)
    del raw["name"]
    assert load_profile(_write(tmp_path, raw), root=root).name == "mine"
    with pytest.raises(FileNotFoundError, match="unknown profile 'nope'.*smoke"):
        load_profile("nope", root=root)


def test_overrides_are_checked_and_merged(root):
    profile = load_profile("smoke", root=root, overrides={"train__epochs": 3, "eval__max_dets": 50, "seeds": [1, 2]})
    assert profile.train.epochs == 3.0 and profile.eval.max_dets == 50 and profile.seeds == [1, 2]
    assert override_mapping({"model__pretrain__epochs": 2}) == {"model": {"pretrain": {"epochs": 2}}}
    with pytest.raises(ConfigError, match="train__epoch: not a profile value"):
        override_mapping({"train__epoch": 1})


def test_round_trip_to_mapping(root):
    profile = load_profile("default", root=root)
    assert load_profile("default", root=root) == profile
    assert to_mapping(profile)["train"]["lr_steps"] == profile.train.lr_steps


def test_deep_merge_does_not_alias_or_mutate():
    base = {"train": {"lr": 0.1, "scales": [1, 2]}, "seeds": [0]}
    merged = deep_merge(base, {"train": {"lr": 0.2}})
    assert merged == {"train": {"lr": 0.2, "scales": [1, 2]}, "seeds": [0]}
    merged["train"]["scales"].append(3)
    assert base == {"train": {"lr": 0.1, "scales": [1, 2]}, "seeds": [0]}


def test_chapter_parameter_files(root):
    assert chapter_parameters("01_data_tail", root=root) == {"examples_per_class": 1, "image_columns": 4}
    assert chapter_parameters("00_intro", root=root) == {}
    assert chapter_parameters("77_absent", root=root) == {}


def test_every_profile_key_is_read_by_something(root):
    """A schema field that no library or chapter code reads is a setting that is silently ignored."""
    import ast

    sources = list((root / "o365lib").rglob("*.py")) + list((root / "book").glob("[0-9][0-9]_*.py"))
    read = set()
    for path in sources:
        if path.name in ("profile.py", "schema.py"):
            continue  # the schema's own definitions are not readers
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)  # getattr(section, "name") and asdict(...) key lookups
    read_via_asdict = {"crops_per_class", "crop_size"}  # PretrainSection is passed as **asdict(...)
    unread = sorted(key for key in field_paths(Profile) if key.split(".")[-1] not in read | read_via_asdict)
    assert not unread, f"profile keys that nothing reads: {unread}"


def test_every_train_setting_arrives_in_the_training_configuration(root):
    """Reading a key is not enough: each train.* value of the profile must reach ``TrainConfig``."""
    from dataclasses import fields
    from types import SimpleNamespace

    from o365lib.book.artefacts.models import train_config
    from o365lib.book.config.schema import TrainSection

    changed = {"epochs": 3.5, "batch_size": 3, "lr": 0.0123, "momentum": 0.8, "weight_decay": 0.002,
               "warmup_iters": 7, "lr_steps": [0.5], "scales": [96, 112], "flip": False, "clip_grad": 2.5,
               "amp": "bf16", "channels_last": True, "checkpoint_every": 9, "num_workers": 2}
    launch = {"processes"}  # how training is launched: it reaches train_local, not TrainConfig
    assert set(changed) | launch == {f.name for f in fields(TrainSection)}, "a new train setting needs a value here"
    cfg = load_profile("smoke", root=root, overrides={f"train__{k}": v for k, v in changed.items()})
    config = train_config(SimpleNamespace(cfg=cfg), seed=5)
    for name, value in changed.items():
        got = getattr(config, name)
        assert (list(got) if isinstance(got, tuple) else got) == value, name
    assert config.seed == 5
