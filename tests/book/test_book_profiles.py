"""Profiles load, validate and merge as the chapters expect."""

from __future__ import annotations

import pytest
import yaml

from o365lib.book.profiles import (
    REQUIRED_KEYS,
    chapter_parameters,
    deep_merge,
    load_profile,
    merge_parameters,
    nest_dotted,
    validate_profile,
)

PROFILES = ("smoke", "default", "gpu", "objects365")


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_with_the_schema(name, root):
    profile = load_profile(name, root=root)
    assert profile["name"] == name
    assert profile["results_dir"] == f"results/{name}"
    for section, keys in REQUIRED_KEYS.items():
        where = profile if not section else profile[section]
        assert set(keys) <= set(where), (section, set(keys) - set(where))
    assert profile["eval"]["ranges"] == ["1-150", "151-300", "301-365"]


def test_profile_numbers_that_other_code_relies_on(root):
    smoke, default, o365 = (load_profile(n, root=root) for n in ("smoke", "default", "objects365"))
    assert smoke["data"]["synthetic_profile"] == "smoke" and default["data"]["synthetic_profile"] == "default"
    assert default["model"]["backbone"] == "tiny" and default["model"]["min_size"] == 128
    # the seed's recipe: 20 epochs, lr 0.1 for 6 epochs then /10 for 10 then /10 for 4, batch 80
    assert o365["train"]["epochs"] == 20 and o365["train"]["lr"] == 0.1 and o365["train"]["batch_size"] == 80
    assert [round(s * 20) for s in o365["train"]["lr_steps"]] == [6, 16]
    assert o365["model"]["backbone"] == "resnext101_64x4d" and o365["model"]["dcn"] is True
    assert o365["data"]["source"] == "coco" and o365["data"]["train"].endswith("objects365_train.json")


def test_profile_by_path_and_unknown_name(root, tmp_path):
    path = tmp_path / "mine.yaml"
    mine = load_profile("smoke", root=root)
    del mine["name"]
    path.write_text(yaml.safe_dump(mine))
    assert load_profile(path, root=root)["name"] == "mine"
    with pytest.raises(FileNotFoundError, match="unknown profile 'nope'.*smoke"):
        load_profile("nope", root=root)


def test_validation_names_file_and_key(root):
    profile = load_profile("smoke", root=root)
    del profile["train"]["lr"]
    with pytest.raises(ValueError, match=r"x\.yaml: train lacks key\(s\) \['lr'\]"):
        validate_profile(profile, source="x.yaml")
    profile = load_profile("smoke", root=root)
    profile["device"] = "tpu"
    with pytest.raises(ValueError, match="device must be one of"):
        validate_profile(profile, source="x.yaml")
    profile = load_profile("smoke", root=root)
    profile["train"]["lr_steps"] = [6, 16]
    with pytest.raises(ValueError, match="lr_steps must be a list of fractions"):
        validate_profile(profile, source="x.yaml")
    profile = load_profile("smoke", root=root)
    profile["train"]["checkpoint_every"] = 0
    with pytest.raises(ValueError, match=r"train.checkpoint_every must be an integer >= 1, got 0"):
        validate_profile(profile, source="x.yaml")


def test_deep_merge_does_not_alias_or_mutate():
    base = {"train": {"lr": 0.1, "scales": [1, 2]}, "seed": 0}
    merged = deep_merge(base, {"train": {"lr": 0.2}})
    assert merged == {"train": {"lr": 0.2, "scales": [1, 2]}, "seed": 0}
    merged["train"]["scales"].append(3)
    assert base == {"train": {"lr": 0.1, "scales": [1, 2]}, "seed": 0}


def test_merge_order_dotted_names_and_none(root):
    profile = load_profile("smoke", root=root)
    merged = merge_parameters(profile, {"classes": "301-365", "train__epochs": 3},
                              {"classes": "151-300", "train__lr": 0.5, "experts__epochs": None})
    assert merged["classes"] == "151-300"  # overrides win over the chapter file
    assert merged["train"]["epochs"] == 3 and merged["train"]["lr"] == 0.5
    assert merged["train"]["batch_size"] == profile["train"]["batch_size"]  # siblings kept
    assert merged["experts"]["epochs"] == profile["experts"]["epochs"]  # None = not given
    assert nest_dotted({"a__b__c": 1, "d": 2}) == {"a": {"b": {"c": 1}}, "d": 2}
    with pytest.raises(ValueError, match="bad parameter name"):
        nest_dotted({"a____b": 1})


def test_chapter_parameter_files(root):
    assert chapter_parameters("01_data_tail", root=root) == {"examples_per_class": 1, "image_columns": 4}
    assert chapter_parameters("00_intro", root=root) == {}
    assert chapter_parameters("77_absent", root=root) == {}
